"""The NAS-Bench-201 paper presets compose and carry docs/method-facts.md's settings (Appendix D.1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from gmnas_cli.cli.app import conf_dir
from gmnas_cli.pipeline.validate import validate

from .conftest import make_cfg

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
PRESETS = {  # name -> (algo, criterion, space ops)
    "paper_nb201_gm_darts": ("darts", "gm", NB201_OPS),
    "paper_nb201_gm_darts1": ("darts", "gm", NB201_OPS),
    "paper_nb201_gm_snas": ("snas", "gm", NB201_OPS),
    "paper_nb201_gm_rsps": ("rsps", "gm", NB201_OPS),
    "paper_nb201_fewshot_darts": ("darts", "exhaustive", NB201_OPS),
    "paper_nb201_oneshot_darts": ("darts", "none", NB201_OPS),
    **{f"paper_nb201_4ops_{c}_{a}": (a, c, NB201_OPS[1:]) for c in ("gm", "random", "exhaustive")
       for a in ("darts", "rsps")},
}


def _compose(preset: str):
    return make_cfg("outputs", f"experiment={preset}", "benchmark.path=bench.csv", "dataset.root=data", "seed=3")


def test_every_paper_nb201_preset_is_listed() -> None:
    found = {p.stem for p in Path(conf_dir(), "experiment").glob("paper_nb201_*.yaml")}
    assert found == set(PRESETS)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_paper_nb201_preset(preset: str) -> None:
    cfg = _compose(preset)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # nothing left unset
    validate(cfg, "run")  # the split settings are possible in this space
    algo, crit, ops = PRESETS[preset]
    rsps = algo == "rsps"
    assert (cfg.algo.name, cfg.criterion.name, list(cfg.space.ops)) == (algo, crit, ops)
    assert (cfg.space.name, cfg.space.C, cfg.space.N) == ("nb201", 16, 5)
    assert (cfg.dataset.name, cfg.benchmark.name, cfg.benchmark.path) == ("cifar10", "nb201", "bench.csv")
    assert cfg.name == f"{preset}-cifar10-s3"
    t = cfg.train  # docs/method-facts.md: batch 48, SGD 0.025 cosine to 0.001, momentum 0.9, Nesterov, clip 5
    assert (t.batch_size, t.lr, t.lr_min, t.momentum, t.nesterov, t.grad_clip) == (48, 0.025, 0.001, 0.9, True, 5.0)
    assert t.weight_decay == (1e-4 if rsps else 5e-4)
    assert t.max_steps_per_epoch == 0 and cfg.dataset.limit == 0
    assert str(t.search_schedule.value) == "run"  # official NB201: search lr keeps T_max = the whole run
    if not rsps:  # alpha: Adam 3e-4, betas (0.5, 0.999), weight decay 1e-3
        a = cfg.algo
        assert (a.arch_lr, list(a.arch_betas), a.arch_weight_decay) == (3e-4, [0.5, 0.999], 1e-3)
    if algo == "darts":  # official NB201 GM + DARTS (2nd); the first-order variant is named as such
        assert cfg.algo.order == (1 if preset.endswith("darts1") else 2)
    if algo == "snas":
        assert (cfg.algo.tau_max, cfg.algo.tau_min) == (1.0, 0.1)
    # DARTS/SNAS: splits at epochs 15 and 30, then 30 search epochs; RSPS: 20, 40, then 50;
    # One-Shot: the base method's own schedule, alpha trained from epoch 0 for the same 60 epochs.
    expected = (0, 60) if crit == "none" else ((20, 50) if rsps else (15, 30))
    assert (cfg.warmup_epochs, cfg.search_epochs) == expected
    if crit in ("gm", "random"):
        assert (cfg.splits, cfg.branching) == (2, 2)
    elif crit == "exhaustive":
        assert cfg.splits == 1  # Few-Shot NAS: one exhaustive split (paper 3.2, Table 1)
    if crit == "gm":
        assert cfg.criterion.batches == 100 and cfg.criterion.edge_selection == "cut_cost"
    else:
        assert cfg.criterion.edge_selection == "random" or crit == "none"
    assert cfg.restart is (crit in ("gm", "random"))  # Few-Shot transfers the one-shot weights
    assert str(getattr(cfg.select.criterion, "value", cfg.select.criterion)) == "max"


def test_every_paper_preset_runs_fp32() -> None:
    """The official code trains and scores in fp32: no paper preset turns bf16 autocast on."""
    presets = sorted(p.stem for p in Path(conf_dir(), "experiment").glob("paper_*.yaml"))
    assert len(presets) > 20
    for preset in presets:
        assert make_cfg("outputs", f"experiment={preset}").amp is False, preset
