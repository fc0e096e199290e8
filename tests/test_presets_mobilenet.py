"""The MobileNet paper presets compose, validate and carry App. D.3's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from gmnas_cli.cli.app import conf_dir
from gmnas_cli.config.derived import branching_list
from gmnas_cli.pipeline.validate import validate

from .conftest import make_cfg

PRESETS = {"paper_mobilenet_gm_proxyless": "gm", "paper_mobilenet_fewshot_proxyless": "exhaustive",
           "paper_mobilenet_oneshot_proxyless": "none"}


def test_every_paper_mobilenet_preset_is_listed() -> None:
    found = {p.stem for p in Path(conf_dir(), "experiment").glob("paper_mobilenet_*.yaml")}
    assert found == set(PRESETS)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_paper_mobilenet_preset(preset: str) -> None:
    cfg = make_cfg("outputs", f"experiment={preset}", "dataset.root=data", "seed=1")
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    validate(cfg, "run")
    assert (cfg.space.name, cfg.algo.name, cfg.criterion.name, cfg.dataset.name) == \
        ("mobilenet", "proxyless", PRESETS[preset], "imagenet")
    assert [list(s) for s in cfg.space.stages] == [[24, 4, 2], [40, 4, 2], [80, 4, 2], [96, 4, 1], [192, 4, 2],
                                                   [320, 1, 1]]
    assert (cfg.dataset.image_size, cfg.dataset.valid_size, cfg.dataset.num_classes) == (224, 10000, 1000)
    a = cfg.algo  # alpha: Adam 1e-3, betas (0, 0.999), every 5 weight steps, no regulariser
    assert (a.arch_lr, list(a.arch_betas), a.arch_weight_decay, a.arch_every, a.target) == \
        (1e-3, [0.0, 0.999], 0.0, 5, "none")
    t = cfg.train
    assert (t.lr, t.momentum, t.nesterov, t.weight_decay, t.label_smoothing) == (0.025, 0.9, True, 4e-5, 0.1)
    r = cfg.retrain  # Few-Shot ProxylessNAS retrain: 300 epochs, 5 warm-up, cosine, wd 5e-5, smoothing
    assert (r.epochs, r.warmup_epochs, r.lr_schedule, r.weight_decay, r.label_smoothing) == \
        (300, 5, "cosine", 5e-5, 0.1)
    assert cfg.warmup_epochs == 40 and cfg.report.table == "mobilenet"
    assert str(getattr(cfg.select.criterion, "value", cfg.select.criterion)) == "val_loss"
    if PRESETS[preset] == "gm":
        assert (cfg.splits, branching_list(cfg), cfg.search_epochs) == (2, [2, 3], 40)
        assert cfg.split_train_arch and not cfg.restart and cfg.train.warmup_lr == 0.05
    if PRESETS[preset] == "exhaustive":
        assert (cfg.splits, list(cfg.criterion.edge_selection)) == (1, ["b1"])
