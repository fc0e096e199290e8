"""Read the artefacts of experiment directories (``outputs/<name>/``) into ``ExperimentRecord``s."""

from __future__ import annotations

import glob
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from gmnas_cli.config.derived import criterion_splits
from gmnas_cli.experiment.state import read_result, read_snapshot, read_status
from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.infra.errors import StageError
from gmnas_cli.infra.io import read_json

if TYPE_CHECKING:
    import pandas as pd

STAGES = ["warmup", "split", "search", "select", "retrain"]


@dataclass
class ExperimentRecord:
    """Everything ``report`` needs from one experiment directory (optional files are ``None``/empty)."""

    name: str
    root: Path
    config: dict[str, Any]
    tree: dict[str, Any] | None = None
    leaves: dict[int, dict[str, Any]] = field(default_factory=dict)
    curves: dict[int, pd.DataFrame] = field(default_factory=dict)
    selection: dict[str, Any] | None = None
    retrain: dict[str, Any] | None = None
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    ranking: dict[str, Any] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        """A config value by dotted key (``"algo.name"``)."""
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def seed(self) -> int | None:
        return self.get("seed")


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_config(root: Path) -> dict[str, Any]:
    """The stages' JSON snapshots merged in pipeline order (YAML snapshots where no JSON exists)."""
    cfg_dir = root / "config"
    files = {p.stem: p for p in cfg_dir.glob("*.yaml")}
    files.update({p.stem: p for p in cfg_dir.glob("*.json")})
    order = sorted(files, key=lambda s: (STAGES.index(s) if s in STAGES else len(STAGES), s))
    merged: dict[str, Any] = {}
    for stage in order:
        path = files[stage]
        if path.suffix == ".json":
            data = read_snapshot(path)
        else:
            try:
                data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
            except Exception as exc:  # any YAML error: a corrupt artefact
                raise StageError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise StageError(f"{path}: expected a mapping")
        merged = _merge(merged, data)
    return merged


def _optional_json(path: Path) -> Any:
    return read_json(path) if path.is_file() else None


def _read_curve(path: Path) -> pd.DataFrame | None:
    import pandas as pd  # lazy: `gmnas status` reads no curves and answers without pandas

    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StageError(f"{path}: not a valid CSV ({str(exc).splitlines()[0]})") from None
    return df if "epoch" in df.columns and len(df) else None


def load_experiment(root: str | Path, curves: bool = True) -> ExperimentRecord:
    """Read one experiment directory (it must hold ``config/`` snapshots); ``curves=False`` skips
    the leaves' training curves (``curve.csv``)."""
    root = Path(root)
    rec = ExperimentRecord(name=root.name, root=root, config=read_config(root))
    rec.tree = PartitionTree.load(root / "tree.json").to_json() if (root / "tree.json").is_file() else None
    search = root / "search"
    for leaf_dir in sorted(search.iterdir() if search.is_dir() else [], key=lambda p: p.name):
        if not leaf_dir.is_dir() or not leaf_dir.name.isdigit():
            continue
        leaf = int(leaf_dir.name)
        result = read_result(leaf_dir / "result.json") if (leaf_dir / "result.json").is_file() else None
        if result is not None:
            rec.leaves[leaf] = result
        if curves and (leaf_dir / "curve.csv").is_file():
            curve = _read_curve(leaf_dir / "curve.csv")
            if curve is not None:
                rec.curves[leaf] = curve
    rec.selection = _optional_json(root / "selection.json")
    rec.retrain = _optional_json(root / "retrain" / "result.json")
    rec.ranking = _optional_json(root / "ranking.json")
    status = root / "status"
    for p in sorted(status.glob("*.json")) if status.is_dir() else []:
        rec.status[p.stem] = read_status(p, p.stem)
    return rec


def find_experiments(patterns: list[str]) -> list[Path]:
    """Directories matching the globs that hold ``config/`` snapshots (others, e.g. the report's, skipped)."""
    found: dict[Path, Path] = {}
    for pattern in patterns:
        for hit in sorted(glob.glob(str(pattern), recursive=True)):
            path = Path(hit)
            cfg_dir = path / "config"
            if cfg_dir.is_dir() and (any(cfg_dir.glob("*.json")) or any(cfg_dir.glob("*.yaml"))):
                found.setdefault(path.resolve(), path)
    return sorted(found.values(), key=lambda p: p.name)


def collect(patterns: list[str]) -> list[ExperimentRecord]:
    return [load_experiment(p) for p in find_experiments(patterns)]


# -- figures derived from one experiment ---------------------------------------------------------

def leaf_count(rec: ExperimentRecord) -> int:
    """Leaf sub-supernets: tree nodes without children (else the searched leaves)."""
    nodes = (rec.tree or {}).get("nodes") or []
    if nodes:
        parents = {n.get("parent") for n in nodes}
        return sum(1 for n in nodes if n.get("id") not in parents)
    return len(rec.leaves)


def split_count(rec: ExperimentRecord) -> int:
    """Splits along a root-to-leaf path (the tree's depth)."""
    nodes = (rec.tree or {}).get("nodes") or []
    if nodes:
        return max(int(n.get("depth", 0)) for n in nodes)
    crit = rec.get("criterion.name")
    return int(rec.get("splits", 0) or 0) if crit is None or criterion_splits(str(crit)) else 0


def branching(rec: ExperimentRecord) -> str:
    """Branching factor(s) of the splits made, e.g. ``"2"`` or ``"2, 3"``; ``"-"`` without splits."""
    nodes = (rec.tree or {}).get("nodes") or []
    by_depth: dict[int, set[int]] = {}
    for n in nodes:
        split = n.get("split") or {}
        if split.get("children"):
            by_depth.setdefault(int(n.get("depth", 0)), set()).add(len(split["children"]))
    if by_depth:
        values = [v for d in sorted(by_depth) for v in sorted(by_depth[d])]
        return ", ".join(str(v) for v in dict.fromkeys(values))
    return "-" if split_count(rec) == 0 else str(rec.get("branching", "-"))


def _pct(x: float) -> float:
    return x * 100.0 if x <= 1.0 else x


def retrain_accuracy(rec: ExperimentRecord) -> float | None:
    """Retrained test accuracy in % (``test_acc`` 0..1 or %, else ``100 - test_error``)."""
    r = rec.retrain or {}
    if isinstance(r.get("test_acc"), (int, float)):
        return _pct(float(r["test_acc"]))
    if isinstance(r.get("test_error"), (int, float)):
        return 100.0 - float(r["test_error"])
    return None


def search_gpu_days(rec: ExperimentRecord) -> float | None:
    """Search cost in GPU days: the supernet search only (warmup + split + search), from the status
    records; selection retrains (successive halving) are not search cost (paper Table 4, review 18)."""
    def secs(stage: str) -> float | None:
        v = rec.status.get(stage, {}).get("seconds")
        return float(v) if isinstance(v, (int, float)) else None

    total, seen = 0.0, False
    for stage in ("warmup", "split"):
        if (s := secs(stage)) is not None:
            total, seen = total + s, True
    search = secs("search")
    if search is None:
        leaf_status = [secs(k) for k in rec.status if k.startswith("search-leaf")]
        parts = [s for s in leaf_status if s is not None] or [
            float(r["seconds"]) for r in rec.leaves.values() if isinstance(r.get("seconds"), (int, float))]
        search = sum(parts) if parts else None
    if search is not None:
        total, seen = total + search, True
    return total / 86400.0 if seen else None


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
