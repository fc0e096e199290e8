"""Declared ranges of config keys, next to their schema definitions.

A schema field declares its valid range with ``bounded(default, ge=..., gt=..., le=..., lt=...)``
(numbers; for a list, every item) or its valid set with ``choices=[...]``. ``check_bounds`` walks
the composed config against the dataclass schema and raises a one-line ``ConfigError`` naming
the key, the value and the allowed range, before any stage writes a file.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig

from gmnas_cli.errors import ConfigError


@dataclass(frozen=True)
class Bounds:
    """Allowed values of one key: inclusive/exclusive limits and/or a finite set."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    min_len: int | None = None

    def describe(self) -> str:
        parts = []
        for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)):
            if v is not None:
                parts.append(f"{op} {v:g}" if isinstance(v, float) else f"{op} {v}")
        if self.choices is not None:
            parts.append("one of " + ", ".join(str(c) for c in self.choices))
        if self.min_len is not None:
            parts.append(f"at least {self.min_len} item(s)")
        return " and ".join(parts)

    def admits(self, value: Any) -> bool:
        if self.choices is not None and value not in self.choices:
            return False
        if isinstance(value, bool):
            return self.choices is None or value in self.choices
        if isinstance(value, (int, float)):
            if value != value:  # NaN is never in range
                return False
            if self.ge is not None and not value >= self.ge:
                return False
            if self.gt is not None and not value > self.gt:
                return False
            if self.le is not None and not value <= self.le:
                return False
            if self.lt is not None and not value < self.lt:
                return False
        return True


def bounded(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None, choices: list[Any] | None = None, min_len: int | None = None) -> Any:
    """A dataclass field with declared bounds (list defaults: pass ``default_factory``)."""
    b = Bounds(ge, gt, le, lt, tuple(choices) if choices is not None else None, min_len)
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata={"bounds": b})
    return field(default=default, metadata={"bounds": b})


def check_bounds(node: DictConfig, schema: type, prefix: str = "") -> None:
    """Raise ConfigError for the first value of ``node`` outside its field's declared bounds."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if f.name not in node:
            continue
        value = node[f.name]
        sub = hints.get(f.name)
        if dataclasses.is_dataclass(sub) and isinstance(value, DictConfig):
            check_bounds(value, sub, f"{prefix}{f.name}.")
            continue
        b: Bounds | None = f.metadata.get("bounds")
        if b is None or value is None:
            continue
        key = prefix + f.name
        if isinstance(value, (list, tuple, ListConfig)):
            items = list(value)
            if b.min_len is not None and len(items) < b.min_len:
                raise ConfigError(f"{key}={items}: allowed {b.describe()}")
            for item in items:
                if not b.admits(item):
                    raise ConfigError(f"{key}={items}: item {item!r} out of range; allowed {b.describe()}")
        elif not b.admits(value):
            raise ConfigError(f"{key}={value!r} is out of range; allowed {b.describe()}")
