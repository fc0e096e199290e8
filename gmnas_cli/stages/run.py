"""``gmnas run``: chain warmup, split, search, select, retrain and report for one config."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from gmnas_cli.experiment.directory import Experiment
from gmnas_cli.stages import report, retrain, search, select, split, warmup


def main(cfg: DictConfig) -> None:
    for stage in (warmup, split, search, select, retrain):
        stage.main(cfg)
    # The report of a single run covers this experiment only.

    rcfg = OmegaConf.merge(cfg, {"report": {"experiments": [str(Experiment(cfg).root)],
                                            "out": str(Experiment(cfg).root / "report")}})
    report.main(rcfg)
