"""Declared ranges of config keys, next to their schema definitions, and cross-key rules.

A schema field declares its valid range with ``bounded(default, ge=..., gt=..., le=..., lt=...)``
(numbers; for a list, every item), its valid set with ``choices=[...]``, a list's length with
``min_len``/``max_len`` and a text's form with ``pattern`` (a full-match regular expression).
A rule between keys is one line beside the schema, e.g. ``rule("train.lr_min <= train.lr")``.
``check_bounds`` walks the composed config against the dataclass schema and raises a one-line
``ConfigError`` naming the key, the value and the allowed range, before any stage writes a file;
``check_rules`` then checks every declared rule.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import operator
import os
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from gmnas_cli.infra.errors import ConfigError


@dataclass(frozen=True)
class Bounds:
    """Allowed values of one key: inclusive/exclusive limits, a finite set, a length, a form."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    min_len: int | None = None
    max_len: int | None = None
    pattern: str | None = None  # text values (or list items) must match it in full
    hint: str | None = None  # the pattern in words, for the error message

    def describe(self) -> str:
        parts = []
        for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)):
            if v is not None:
                parts.append(f"{op} {v:g}" if isinstance(v, float) else f"{op} {v}")
        if self.choices is not None:
            parts.append("one of " + ", ".join(str(c) for c in self.choices))
        if self.pattern is not None:
            parts.append(self.hint or f"matching {self.pattern}")
        if self.min_len is not None and self.max_len is not None:
            n = (f"{self.min_len}" if self.min_len == self.max_len else f"{self.min_len}..{self.max_len}")
            parts.append(f"{n} item(s)")
        elif self.min_len is not None:
            parts.append(f"at least {self.min_len} item(s)")
        elif self.max_len is not None:
            parts.append(f"at most {self.max_len} item(s)")
        return " and ".join(parts) or "any value"

    def admits(self, value: Any) -> bool:
        """``value`` (a scalar, or one item of a list) lies in the range."""
        if self.choices is not None and value not in self.choices:
            return False
        if isinstance(value, bool):
            return self.choices is None or value in self.choices
        if isinstance(value, (int, float)):
            if not math.isfinite(value):  # NaN and infinities are never in range
                return False
            if self.ge is not None and not value >= self.ge:
                return False
            if self.gt is not None and not value > self.gt:
                return False
            if self.le is not None and not value <= self.le:
                return False
            if self.lt is not None and not value < self.lt:
                return False
        if isinstance(value, str) and self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            return False
        return True

    def admits_length(self, n: int) -> bool:
        return (self.min_len is None or n >= self.min_len) and (self.max_len is None or n <= self.max_len)


def bounded(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None, choices: list[Any] | None = None, min_len: int | None = None,
            max_len: int | None = None, pattern: str | None = None, hint: str | None = None) -> Any:
    """A dataclass field with declared bounds (list defaults: pass ``default_factory``)."""
    b = Bounds(ge, gt, le, lt, tuple(choices) if choices is not None else None, min_len, max_len, pattern, hint)
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata={"bounds": b})
    return field(default=default, metadata={"bounds": b})


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."  # one line, also for huge generated values


def check_bounds(node: DictConfig, schema: type, prefix: str = "") -> None:
    """Raise ConfigError for the first value of ``node`` outside its field's declared bounds."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if f.name not in node or OmegaConf.is_missing(node, f.name):
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
            if not b.admits_length(len(items)):
                raise ConfigError(f"{key}={_show(items)} has {len(items)} item(s); allowed {b.describe()}")
            for item in items:
                if not b.admits(item):
                    what = "not allowed" if isinstance(item, str) else "out of range"
                    raise ConfigError(f"{key}={_show(items)}: item {_show(item)} {what}; allowed {b.describe()}")
        elif not b.admits(value):
            what = "is not allowed" if isinstance(value, str) else "is out of range"
            raise ConfigError(f"{key}={_show(value)} {what}; allowed {b.describe()}")


# -- walking the schema -----------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """One leaf key of the schema: its dotted name, its type and its declared bounds (if any)."""

    name: str
    type: Any
    bounds: Bounds | None
    default: Any


def schema_keys(schema: type, prefix: str = "") -> Iterator[Key]:
    """Every leaf key of a dataclass schema, depth first (nested config sections are walked)."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from schema_keys(tp, f"{prefix}{f.name}.")
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = None
        yield Key(prefix + f.name, tp, f.metadata.get("bounds"), default)


# -- cross-key rules --------------------------------------------------------------------------
def world_size() -> int:
    """Processes of a data-parallel job: torchrun's ``WORLD_SIZE`` (1 when unset)."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} in the environment is not an integer") from None


# Names a rule may use besides config keys: values of the run's environment.
DERIVED: dict[str, Callable[[], Any]] = {"WORLD_SIZE": world_size}

_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.Eq: operator.eq, ast.NotEq: operator.ne}
_ARITH = {ast.Mod: operator.mod, ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


@dataclass(frozen=True)
class Rule:
    """A comparison between config keys (dotted), numbers and ``DERIVED`` names, e.g.
    ``train.batch_size % WORLD_SIZE == 0``; a rule with an absent or null key is skipped."""

    text: str
    tree: ast.Expression

    def names(self) -> list[str]:
        """Dotted config keys and derived names the rule reads, in order of appearance."""
        out: list[str] = []

        def visit(node: ast.AST) -> None:
            name = _dotted(node)
            if name is not None:
                if name not in out:
                    out.append(name)
                return
            for child in ast.iter_child_nodes(node):
                visit(child)

        visit(self.tree.body)
        return out

    def values(self, cfg: DictConfig) -> dict[str, Any] | None:
        """The values the rule reads, or None if one is absent (a key another config lacks)."""
        vals: dict[str, Any] = {}
        for name in self.names():
            if name in DERIVED:
                vals[name] = DERIVED[name]()
                continue
            value = OmegaConf.select(cfg, name, default=None)
            if value is None or isinstance(value, (DictConfig, ListConfig)):
                return None
            vals[name] = value
        return vals

    def holds(self, cfg: DictConfig) -> bool:
        vals = self.values(cfg)
        return True if vals is None else bool(_eval(self.tree.body, vals))


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _eval(node: ast.AST, vals: dict[str, Any]) -> Any:
    if isinstance(node, ast.Compare):
        left = _eval(node.left, vals)
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, vals)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BinOp):
        return _ARITH[type(node.op)](_eval(node.left, vals), _eval(node.right, vals))
    if isinstance(node, ast.Constant):
        return node.value
    return vals[_dotted(node)]  # type: ignore[index]


def _check_syntax(node: ast.AST, text: str) -> None:
    allowed = (ast.Expression, ast.Compare, ast.BinOp, ast.Constant, ast.Name, ast.Attribute, ast.Load,
               *_COMPARE, *_ARITH)
    for sub in ast.walk(node):
        if not isinstance(sub, allowed):
            raise ValueError(f"rule {text!r}: {type(sub).__name__} is not allowed (compare keys, numbers, + - * %)")
    if not isinstance(node.body, ast.Compare):  # type: ignore[attr-defined]
        raise ValueError(f"rule {text!r} must be a comparison")


RULES: list[Rule] = []


def rule(text: str) -> Rule:
    """Declare a cross-key rule (one line beside the schema): ``rule("algo.tau_min <= algo.tau_max")``."""
    tree = ast.parse(text, mode="eval")
    _check_syntax(tree, text)
    r = Rule(text, tree)
    RULES.append(r)
    return r


def check_rules(cfg: DictConfig, rules: list[Rule] | None = None) -> None:
    """Raise ConfigError naming the first broken rule and the values it read."""
    for r in RULES if rules is None else rules:
        if not r.holds(cfg):
            vals = r.values(cfg) or {}
            shown = ", ".join(f"{k}={_show(v)}" for k, v in vals.items())
            raise ConfigError(f"{shown}: must satisfy {r.text}")


def unknown_keys(node: DictConfig, schema: type, prefix: str = "") -> list[tuple[str, list[str]]]:
    """Keys of ``node`` that its dataclass schema lacks (Hydra's ``+key=value`` can add them)."""
    fields = {f.name for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    found: list[tuple[str, list[str]]] = []
    for key in node.keys():
        if key not in fields:
            found.append((prefix + str(key), sorted(fields)))
        elif dataclasses.is_dataclass(hints[key]) and isinstance(node.get(key), DictConfig):
            found += unknown_keys(node[key], hints[key], f"{prefix}{key}.")
    return found


def check_declared(cfg: DictConfig, schema: type) -> None:
    """Known keys, declared ranges and cross-key rules: what every command checks at start-up
    (``gmnas status`` and ``tree`` only this, without the registries and torch)."""
    unknown = unknown_keys(cfg, schema)
    if unknown:
        key, valid = unknown[0]
        raise ConfigError(f"unknown config key {key!r}; valid keys here: {', '.join(valid)}")
    check_bounds(cfg, schema)
    check_rules(cfg)
