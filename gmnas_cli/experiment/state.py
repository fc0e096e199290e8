"""Schemas of the state files an experiment hands between stages, checked when they are read.

A file that parses but holds the wrong thing (a string where a loss belongs, a leaf that is not in
the tree, a negative loss) is as damaged as a truncated one: each reader here gives one line naming
the file, what is wrong and the command that recovers (docs/reliability.md, "Damaged state").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gmnas_cli.infra.errors import GmnasError, StageError
from gmnas_cli.infra.io import read_json


class DamagedState(StageError):
    """A state file that does not hold what its schema says."""


def rerun(stage: str) -> str:
    """The recovering command of a damaged file a stage wrote: its own rerun from scratch."""
    return f"`gmnas {stage} force=true` rewrites it"


def _fail(path: Path, what: str, fix: str) -> DamagedState:
    return DamagedState(f"{path}: {what}; {fix}")


def number(data: dict, key: str, path: Path, fix: str, lo: float = -math.inf, hi: float = math.inf,
           optional: bool = False) -> float | None:
    """``data[key]`` as a finite number in [lo, hi] (``None`` allowed with ``optional``)."""
    if key not in data:
        if optional:
            return None
        raise _fail(path, f"{key!r} is missing", fix)
    v = data[key]
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        rng = f" in [{lo:g}, {hi:g}]" if (lo, hi) != (-math.inf, math.inf) else ""
        raise _fail(path, f"{key}={v!r} is not a finite number{rng}", fix)
    return float(v)


def _object(data: Any, path: Path, fix: str) -> dict:
    if not isinstance(data, dict):
        raise _fail(path, f"expected a JSON object, found {type(data).__name__}", fix)
    return data


def read_status(path: Path, stage: str) -> dict[str, Any]:
    """``status/<stage>.json``: the completion record of a stage."""
    fix = f"delete it and rerun `gmnas {stage.split('-')[0]}` (it resumes from the checkpoints)"
    data = _object(_read(path, fix), path, fix)
    number(data, "finished", path, fix, lo=0, optional=True)
    number(data, "seconds", path, fix, lo=0, optional=True)
    if "stage" in data and not isinstance(data["stage"], str):
        raise _fail(path, f"stage={data['stage']!r} is not a stage name", fix)
    return data


def read_result(path: Path, leaves: Iterable[int] | None = None,
                parse_arch: Callable[[str], Any] | None = None, stage: str = "search") -> dict[str, Any]:
    """``search/<leaf>/result.json``: the leaf id (one of ``leaves``), its architecture (parsed by
    ``parse_arch``), validation loss >= 0 and accuracy in [0, 1]."""
    fix = rerun(stage) if stage != "search" else f"delete {path.parent} and rerun `gmnas search` (that leaf is searched again)"
    data = _object(_read(path, fix), path, fix)
    leaf = data.get("leaf")
    if isinstance(leaf, bool) or not isinstance(leaf, int):
        raise _fail(path, f"leaf={leaf!r} is not a node id", fix)
    if leaves is not None and leaf not in set(leaves):
        raise _fail(path, f"leaf {leaf} is not a leaf of the partition tree", fix)
    if path.parent.name.isdigit() and int(path.parent.name) != leaf:
        raise _fail(path, f"leaf {leaf} in the folder of leaf {path.parent.name}", fix)
    check_arch(data, path, fix, parse_arch)
    number(data, "val_loss", path, fix, lo=0)
    number(data, "val_acc", path, fix, lo=0, hi=1)
    return data


def check_arch(data: dict, path: Path, fix: str, parse_arch: Callable[[str], Any] | None) -> None:
    arch = data.get("arch")
    if not isinstance(arch, str) or not arch:
        raise _fail(path, f"arch={arch!r} is not an architecture string", fix)
    if parse_arch is not None:
        try:
            parse_arch(arch)
        except (ValueError, GmnasError) as err:
            raise _fail(path, f"arch does not parse ({err})", fix) from None


def read_selection(path: Path, leaves: Iterable[int] | None = None,
                   parse_arch: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """``selection.json``: the chosen leaf (one of ``leaves``) and its architecture."""
    fix = rerun("select")
    data = _object(_read(path, fix), path, fix)
    leaf = data.get("leaf")
    if isinstance(leaf, bool) or not isinstance(leaf, int) or (leaves is not None and leaf not in set(leaves)):
        raise _fail(path, f"leaf={leaf!r} is not a leaf of the partition tree", fix)
    check_arch(data, path, fix, parse_arch)
    return data


def read_progress(path: Path, edges: Iterable[str]) -> dict[str, Any]:
    """``nodes/<id>/gm_progress_<s>.json``: edge -> its score (a finite cut cost and op groups)."""
    fix = "delete it and rerun `gmnas split` (those edges are scored again)"
    data = _object(_read(path, fix), path, fix)
    known = set(edges)
    for edge, score in data.items():
        if edge not in known:
            raise _fail(path, f"{edge!r} is not an edge of this node", fix)
        if not isinstance(score, dict) or not isinstance(score.get("groups"), list):
            raise _fail(path, f"the score of edge {edge} lacks its op groups", fix)
        number(score, "cut_cost", path, fix)
    return data


def read_retrain_result(path: Path) -> dict[str, Any]:
    """``retrain/result.json``: the architecture and a finite test error in [0, 100] % (or none)."""
    fix = rerun("retrain")
    data = _object(_read(path, fix), path, fix)
    if not isinstance(data.get("arch"), str):
        raise _fail(path, f"arch={data.get('arch')!r} is not an architecture string", fix)
    number(data, "test_error", path, fix, lo=0, hi=100, optional=True)
    return data


def read_snapshot(path: Path) -> dict[str, Any]:
    """``config/<stage>.json``: a mapping of config sections."""
    stage = path.stem
    fix = f"delete it and rerun `gmnas {stage}` (it is written again)"
    return _object(_read(path, fix), path, fix)


def _read(path: Path, fix: str) -> Any:
    try:
        return read_json(path)
    except DamagedState:
        raise
    except StageError as err:
        raise DamagedState(f"{err}; {fix}") from None
    except OSError as err:
        raise DamagedState(f"{path}: cannot be read ({err.strerror}); {fix}") from None
