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

# The module that defines each plugin registry, by kind: ``Registry.of`` imports it by name, so a layer
# below the plugins (config/derived.py, experiment/directory.py) can ask a plugin a declared question
# through the registry without importing the plugin layer.
HOMES = {"space": "gmnas_cli.spaces.base", "algo": "gmnas_cli.algorithms.base",
         "criterion": "gmnas_cli.criteria.base", "dataset": "gmnas_cli.data.base"}
_BY_KIND: dict[str, Registry] = {}


class Registry(Generic[T]):
    """A name -> class/function mapping filled by the ``register`` decorator."""

    def __init__(self, kind: str, catalog: str | None = None) -> None:
        self.kind = kind
        self.catalog = catalog
        self._items: dict[str, T] = {}
        self._keys: dict[str, tuple[str, ...]] = {}
        self._loaded = catalog is None
        if kind in HOMES and catalog is not None:  # the plugin registry of its kind (the first one made)
            _BY_KIND.setdefault(kind, self)

    @staticmethod
    def of(kind: str) -> Registry:
        """The plugin registry of ``kind`` (``"space"``, ``"algo"``, ``"criterion"``, ``"dataset"``)."""
        if kind not in _BY_KIND:
            importlib.import_module(HOMES[kind])  # defines it (a deliberate lazy import by name)
        return _BY_KIND[kind]

    def register(self, name: str, keys: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Register ``obj`` as option ``name``. ``keys``: the keys of its config group that belong to
        this option (and to the others that declare them); set on a run that chose another option,
        they are refused at start-up (``pipeline/validate.py``)."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            self._keys[name] = tuple(keys)
            return obj

        return deco

    def keys_of(self, name: str) -> tuple[str, ...]:
        """The config keys option ``name`` declared as its own (``register(name, keys=...)``)."""
        self[name]
        return self._keys[name]

    def owners(self) -> dict[str, list[str]]:
        """Each declared key -> the options that declared it, in name order."""
        out: dict[str, list[str]] = {}
        for name in self.names():
            for key in self._keys[name]:
                out.setdefault(key, []).append(name)
        return out

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
