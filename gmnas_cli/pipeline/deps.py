"""Stages bring their predecessors, like ``make``: ``gmnas split`` on a new experiment
warms up first. A predecessor that completed is reused, never redone; ``deps=never`` refuses.

Predecessors run with the same config, except the keys that only say how *this* command runs
(``force``, ``resume``, ``leaf``): a forced search must not discard a finished warmup, and a
``leaf=K`` job needs the whole tree. Parallel jobs (``gmnas search -m leaf=0,1,2,3``) on a new
experiment take an exclusive lock per predecessor, so exactly one of them runs it and the others
wait and then reuse it; a predecessor running in another process (leaf jobs of ``search``) is
waited for, then only what it left undone is run.
"""

from __future__ import annotations

import importlib

from omegaconf import DictConfig, OmegaConf

from gmnas_cli.experiment.directory import Experiment
from gmnas_cli.infra import distributed
from gmnas_cli.infra.locks import exclusive, is_held
from gmnas_cli.infra.logging import log


def predecessor_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` for running a predecessor: same experiment, resumable, not forced, all leaves."""
    return OmegaConf.merge(cfg, {"force": False, "resume": "auto", "leaf": None})


def missing_predecessors(exp: Experiment, requires: list[str]) -> list[str]:
    return [p for p in requires if not exp.is_done(p)]


def bring_predecessors(cfg: DictConfig, exp: Experiment, stage: str, missing: list[str]) -> None:
    """Run each missing predecessor (which brings its own) through its stage module's ``main``."""
    pcfg = predecessor_config(cfg)
    for pred in missing:
        with exclusive(exp.root, f"{pred}.deps"):
            if distributed.agree(is_held(exp.root, pred)):  # data parallel: rank 0's view  # e.g. leaf jobs still searching: wait for them, never rerun their work
                log.info(f"{stage}: `gmnas {pred}` is running in another process in {exp.root}; waiting for it")
                with exclusive(exp.root, pred):
                    pass
            if exp.is_done(pred):  # another job finished it while we waited
                continue
            log.info(f"{stage}: stage '{pred}' has not completed in {exp.root}; running `gmnas {pred}` first "
                     f"(deps=never refuses instead)")
            importlib.import_module(f"gmnas_cli.stages.{pred}").main(pcfg)
