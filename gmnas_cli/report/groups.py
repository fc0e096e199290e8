"""Method labels (as the paper names rows) and seed groups (config minus ``seed``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gmnas_cli.algorithms import ALGORITHMS
from gmnas_cli.criteria import CRITERIA
from gmnas_cli.report.collect import ExperimentRecord

# Never part of a group's identity: the seed (what mean ± std runs over) and machine-specific paths.
IGNORED = ("seed", "name", "out_dir", "benchmark.path", "dataset.root")

DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet16": "ImageNet-16-120",
                 "imagenet": "ImageNet"}


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _excluded(key: str, exclude: Iterable[str]) -> bool:
    return any(key == e or key.startswith(e + ".") or (e.endswith(".") and key.startswith(e))
               for e in (*IGNORED, *exclude))


def algo_label(rec: ExperimentRecord, always_order: bool = False) -> str:
    """``DARTS``, ``DARTS (2nd)``; with ``always_order`` also ``DARTS (1st)`` (paper Table 4)."""
    name = str(rec.get("algo.name", "?"))  # an algorithm no longer registered: its name in capitals
    return ALGORITHMS[name].report_label(rec.get, always_order) if name in ALGORITHMS else name.upper()


def method_label(rec: ExperimentRecord, always_order: bool = False) -> str:
    """``GM + DARTS``, ``Few Shot + SNAS``, ``RSPS`` (paper Table 3 rows)."""
    crit = rec.get("criterion.name")
    prefix = "" if crit is None else CRITERIA[str(crit)].method_prefix if str(crit) in CRITERIA else str(crit)
    algo = algo_label(rec, always_order)
    return f"{prefix} + {algo}" if prefix else algo


def criterion_label(rec: ExperimentRecord) -> str:
    crit = str(rec.get("criterion.name", "none"))
    return (CRITERIA[crit].label or crit) if crit in CRITERIA else crit


@dataclass
class Group:
    """Experiments that differ only in their seed."""

    key: str
    records: list[ExperimentRecord]
    settings: dict[str, Any]
    suffix: str = ""  # differing settings that tell apart groups with the same label

    @property
    def first(self) -> ExperimentRecord:
        return self.records[0]

    @property
    def seeds(self) -> list[Any]:
        return [r.seed for r in self.records]


def _fmt(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def group(records: list[ExperimentRecord], exclude: Iterable[str] = (), label: Any = method_label,
          implied: Iterable[str] = ("algo.name", "criterion.name")) -> list[Group]:
    """Group by config minus seed and ``exclude`` (keys or dotted prefixes), in order of appearance.

    Groups sharing ``label(record)`` get a ``suffix`` naming the settings that tell them apart.
    """
    exclude = tuple(exclude)
    groups: dict[str, Group] = {}
    for rec in records:
        settings = {k: v for k, v in flatten(rec.config).items() if not _excluded(k, exclude)}
        key = json.dumps(settings, sort_keys=True, default=str)
        if key not in groups:
            groups[key] = Group(key, [], settings)
        groups[key].records.append(rec)
    out = list(groups.values())
    for g in out:
        g.records.sort(key=lambda r: (r.seed if isinstance(r.seed, int) else 0, r.name))
    by_label: dict[str, list[Group]] = {}
    for g in out:
        by_label.setdefault(label(g.first), []).append(g)
    implied = set(implied)
    ordered: list[Group] = []
    for same in by_label.values():
        keys = sorted({k for g in same for k in g.settings} - implied)
        differing = [k for k in keys if len({_fmt(g.settings.get(k)) for g in same}) > 1]
        for g in same:
            g.suffix = ", ".join(f"{k}={_fmt(g.settings.get(k))}" for k in differing)
        ordered += sorted(same, key=lambda g: [_sortable(g.settings.get(k)) for k in differing])
    return ordered


def _sortable(v: Any) -> tuple[int, float, str]:
    """Numbers before text, numbers by value (warmup_epochs 0, 5, 15)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, _fmt(v))


def labelled(g: Group, text: str) -> str:
    return f"{text} ({g.suffix})" if g.suffix else text
