"""Stages bring their predecessors, like ``make`` (issue 16): ``gmnas split`` on a new experiment
warms up first. A predecessor that completed is reused, never redone; ``deps=never`` refuses.

Predecessors run with the same config, except the keys that only say how *this* command runs
(``force``, ``resume``, ``leaf``): a forced search must not discard a finished warmup, and a
``leaf=K`` job needs the whole tree. Parallel jobs (``gmnas search -m leaf=0,1,2,3``) on a new
experiment take an exclusive lock per predecessor, so exactly one of them runs it and the others
wait and then reuse it.
"""

from __future__ import annotations

import fcntl
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gmnas_cli.experiment import Experiment
from gmnas_cli.logging import log

LOCK_DIR = "locks"  # inside the experiment directory


@contextmanager
def stage_lock(root: Path, stage: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``<root>/locks/<stage>.lock`` (blocks until free)."""
    path = root / LOCK_DIR / f"{stage}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(f"{stage}: another job is running it in {root}; waiting")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_locked(root: Path, stage: str) -> bool:
    """True while some process holds ``stage``'s lock (a predecessor being run for a later stage)."""
    path = root / LOCK_DIR / f"{stage}.lock"
    if not path.exists():
        return False
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def predecessor_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` for running a predecessor: same experiment, resumable, not forced, all leaves."""
    return OmegaConf.merge(cfg, {"force": False, "resume": "auto", "leaf": None})


def missing_predecessors(exp: Experiment, requires: list[str]) -> list[str]:
    return [p for p in requires if not exp.is_done(p)]


def bring_predecessors(cfg: DictConfig, exp: Experiment, stage: str, missing: list[str]) -> None:
    """Run each missing predecessor (which brings its own) through its stage module's ``main``."""
    pcfg = predecessor_config(cfg)
    for pred in missing:
        with stage_lock(exp.root, pred):
            if exp.is_done(pred):  # another job finished it while we waited
                continue
            log.info(f"{stage}: stage '{pred}' has not completed in {exp.root}; running `gmnas {pred}` first "
                     f"(deps=never refuses instead)")
            importlib.import_module(f"gmnas_cli.stages.{pred}").main(pcfg)
