"""DARTS genotypes from a dict or from the usual ``Genotype(...)`` text, parsed without ``eval``."""

from __future__ import annotations

import ast
import json
from typing import Any

from gmnas_cli.infra.errors import StageError

Cell = list[tuple[str, int]]
_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")


def _bad(text: Any, why: str) -> StageError:
    shown = str(text).replace("\n", " ")
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return StageError(f"not a DARTS genotype ({why}): {shown!r}")


def _node_value(node: ast.AST, text: str) -> Any:
    """A literal, or ``range(a, b)`` (the only call allowed inside a genotype)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        if node.keywords or not 1 <= len(node.args) <= 3:
            raise _bad(text, "bad range(...)")
        return list(range(*[int(ast.literal_eval(a)) for a in node.args]))
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _bad(text, "only literals and range(...) are allowed") from None


def _parse_text(text: str) -> dict[str, Any]:
    text = text.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise _bad(text, "syntax error") from None
    if isinstance(tree, ast.Dict):
        return _node_value(tree, text)
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
        raise _bad(text, "expected Genotype(normal=..., normal_concat=..., reduce=..., reduce_concat=...)")
    values: dict[str, Any] = {}
    for key, arg in zip(_KEYS, tree.args):
        values[key] = _node_value(arg, text)
    for kw in tree.keywords:
        if kw.arg not in _KEYS:
            raise _bad(text, f"unknown field {kw.arg!r}")
        values[kw.arg] = _node_value(kw.value, text)
    return values


def _cell(value: Any, key: str, text: Any) -> Cell:
    if not isinstance(value, (list, tuple)) or len(value) != 8:
        raise _bad(text, f"{key} needs 8 (op, input) pairs")
    cell: Cell = []
    for item in value:
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str):
            raise _bad(text, f"{key} item {item!r} is not (op, input)")
        try:
            cell.append((item[0], int(item[1])))
        except (TypeError, ValueError):
            raise _bad(text, f"{key} item {item!r} has a non-integer input") from None
    return cell


def parse_genotype(genotype: Any) -> dict[str, Any]:
    """Normalise a genotype (dict, namedtuple or text) to ``{"normal": [(op, i)]*8, ..., "*_concat": [...]}``."""
    if hasattr(genotype, "_asdict"):
        genotype = genotype._asdict()
    raw = _parse_text(genotype) if isinstance(genotype, str) else genotype
    if not isinstance(raw, dict):
        raise _bad(genotype, "expected a dict or Genotype(...) text")
    missing = [k for k in ("normal", "reduce") if k not in raw]
    if missing:
        raise _bad(genotype, f"missing {missing[0]!r}")
    out: dict[str, Any] = {}
    for cell in ("normal", "reduce"):
        out[cell] = _cell(raw[cell], cell, genotype)
        concat = raw.get(f"{cell}_concat", [2, 3, 4, 5])
        out[f"{cell}_concat"] = [int(c) for c in concat]
    return out
