"""Where experiments stand (``gmnas status``): per stage done / running / interrupted / not started,
with the epoch and leaf in progress read from the checkpoints, plus the leaves, the selected
architecture, its test error or benchmark figures and the wall time. Reads only; writes nothing.

A stage is *running* while a process holds its lock (``infra/locks.py``; dropped by the kernel when the
process dies), *interrupted* when it started (config snapshot or checkpoints) but no process holds
it: rerunning the same command resumes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gmnas_cli.experiment.directory import STAGE_ORDER
from gmnas_cli.experiment.state import DamagedState
from gmnas_cli.infra.locks import is_held
from gmnas_cli.report.collect import ExperimentRecord, leaf_count, load_experiment


def ckpt_epoch(path: Path) -> int | None:
    """The epoch stored in a checkpoint (``None`` if absent or unreadable, e.g. mid-rotation)."""
    from gmnas_cli.infra.io import load_checkpoint

    if not path.is_file():
        return None
    try:
        return int(load_checkpoint(path, fallback=False).get("epoch"))
    except Exception:  # a status display never fails on a checkpoint being replaced
        return None


def _leaf_ids(rec: ExperimentRecord) -> list[int]:
    nodes = (rec.tree or {}).get("nodes") or []
    return [int(n["id"]) for n in nodes if not n.get("split")]


def _progress(rec: ExperimentRecord, stage: str) -> str:
    """What the checkpoints say about a started stage: epoch x of y, leaf k of n."""
    root, cfg = rec.root, rec.config
    if stage == "warmup":
        e = ckpt_epoch(root / "nodes" / "0" / "ckpt.pt")
        return f"epoch {e or 0} of {cfg.get('warmup_epochs')}"
    if stage == "split":
        nodes = (rec.tree or {}).get("nodes") or []
        done = sum(1 for n in nodes if n.get("split"))
        text = f"{done} node(s) split, {len(nodes) - done} leaves so far"
        ckpts = sorted((root / "nodes").glob("*/ckpt.pt"), key=lambda p: p.stat().st_mtime)
        if ckpts and ckpts[-1].parent.name != "0":
            node = int(ckpts[-1].parent.name)
            depth = next((int(n.get("depth", 0)) for n in nodes if n.get("id") == node), 0)
            target = int(cfg.get("warmup_epochs", 0)) * (depth + 1)
            e = ckpt_epoch(ckpts[-1])
            if e is not None and e < target:
                text += f"; node {node} epoch {e} of {target}"
        return text
    if stage == "search":
        leaves = _leaf_ids(rec)
        parts = [f"{len(rec.leaves)} of {len(leaves)} leaves done"]
        for k, leaf in enumerate(leaves):
            d = root / "search" / str(leaf)
            if leaf not in rec.leaves and (d / "ckpt.pt").is_file():
                parts.append(f"leaf {k + 1} of {len(leaves)} (node {leaf}) epoch {ckpt_epoch(d / 'ckpt.pt') or 0} "
                             f"of {cfg.get('search_epochs')}")
        return "; ".join(parts)
    if stage == "select":
        rungs = sorted((root / "select_sh").glob("rung*-leaf*.json")) if (root / "select_sh").is_dir() else []
        return f"successive halving: {len(rungs)} short retrain(s) done" if rungs else ""
    if stage == "retrain":
        e = ckpt_epoch(root / "retrain" / "ckpt.pt")
        return f"epoch {e or 0} of {(cfg.get('retrain') or {}).get('epochs')}"
    return ""


def _started(rec: ExperimentRecord, stage: str) -> bool:
    root = rec.root
    if (root / "config" / f"{stage}.json").exists() or (root / "config" / f"{stage}.yaml").exists():
        return True
    return {"warmup": (root / "nodes" / "0" / "ckpt.pt").exists(),
            "search": (root / "search").is_dir() and any((root / "search").iterdir()),
            "retrain": (root / "retrain").is_dir()}.get(stage, False)


def stage_state(rec: ExperimentRecord, stage: str) -> dict[str, Any]:
    """``{"state": done|running|interrupted|not started, "detail": ..., "seconds": ...}``."""
    status = rec.status.get(stage)
    if status is not None:
        return {"state": "done", "detail": "", "seconds": status.get("seconds")}
    if is_held(rec.root, stage):
        return {"state": "running", "detail": _progress(rec, stage), "seconds": None}
    earlier = STAGE_ORDER[:STAGE_ORDER.index(stage)]
    if _started(rec, stage) and all(p in rec.status for p in earlier):  # else: a stale snapshot
        return {"state": "interrupted", "detail": _progress(rec, stage), "seconds": None}
    return {"state": "not started", "detail": "", "seconds": None}


def result_figures(rec: ExperimentRecord) -> dict[str, Any]:
    """Test error (%) of the retrained architecture, else the benchmark's figures of the selection."""
    r = rec.retrain or {}
    bench = r.get("benchmark") or (rec.selection or {}).get("benchmark")
    return {"test_error": r.get("test_error"), "benchmark": bench or None}


def damaged_status(root: str | Path, why: str) -> dict[str, Any]:
    """The overview row of an experiment whose state files do not read (``why``: the one line)."""
    root = Path(root)
    return {"name": root.name, "root": str(root), "damaged": why,
            "stages": {s: {"state": "damaged", "detail": "", "seconds": None} for s in STAGE_ORDER},
            "leaves": None, "leaf_results": [], "selected_leaf": None, "selected_arch": None,
            "test_error": None, "benchmark": None, "seconds": None}


def experiment_status(root: str | Path) -> dict[str, Any]:
    """Everything ``gmnas status`` shows about one experiment, as plain JSON-able values; a damaged
    state file is a one-line StageError naming it."""
    rec = load_experiment(root, curves=False)
    if rec.tree is None and any(s in rec.status for s in ("split", "search", "select")):
        raise DamagedState(f"{rec.root / 'tree.json'}: missing although the split is complete; "
                           "`gmnas split force=true` rebuilds the split from the warmup checkpoint")
    stages = {s: stage_state(rec, s) for s in STAGE_ORDER}
    seconds = [v["seconds"] for v in stages.values() if isinstance(v["seconds"], (int, float))]
    if stages["search"]["seconds"] is None:  # parallel leaf jobs: the leaves' own wall times
        seconds += [float(r["seconds"]) for r in rec.leaves.values() if isinstance(r.get("seconds"), (int, float))]
    sel = rec.selection or {}
    leaves = []
    for k, leaf in enumerate(_leaf_ids(rec)):
        res = rec.leaves.get(leaf) or {}
        leaves.append({"index": k, "node": leaf, "arch": res.get("arch"), "val_loss": res.get("val_loss"),
                       "val_acc": res.get("val_acc"), "selected": sel.get("leaf") == leaf,
                       "done": bool(res)})
    return {"name": rec.name, "root": str(rec.root), "stages": stages, "leaves": leaf_count(rec),
            "leaf_results": leaves, "selected_leaf": sel.get("leaf"), "selected_arch": sel.get("arch"),
            **result_figures(rec), "seconds": round(sum(seconds), 3) if seconds else None}
