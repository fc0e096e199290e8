"""Registries keyed by config option names (``space=darts`` <-> ``SPACES["darts"]``).

A registry names its *catalog*: the module that imports every built-in plugin of its kind (e.g.
``gmnas_cli.spaces.catalog``). The catalog is imported at the first lookup, not when the registry
is defined, so a plugin module may import the base module that holds its registry (and anything
below it) without importing its sibling plugins: adding a plugin is one module plus one line in
its catalog (docs/extending.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from gmnas_cli.infra.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> class/function mapping filled by the ``register`` decorator."""

    def __init__(self, kind: str, catalog: str | None = None) -> None:
        self.kind = kind
        self.catalog = catalog
        self._items: dict[str, T] = {}
        self._loaded = catalog is None

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def _load(self) -> dict[str, T]:
        """The items, after the catalog's plugins have registered themselves (once)."""
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self.catalog)  # type: ignore[arg-type]
        return self._items

    def __getitem__(self, name: str) -> T:
        items = self._load()
        if name not in items:
            raise ConfigError(f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(items))}")
        return items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def names(self) -> list[str]:
        return sorted(self._load())
