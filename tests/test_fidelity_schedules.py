"""Schedules as the official code (whole-run split phase, children inherit), paper presets on the
command line, and Few-Shot's one edge permutation for every branch."""

from __future__ import annotations

import csv
import math

import pytest

from gmnas_cli.algorithms import build_algorithm
from gmnas_cli.config.derived import run_epochs, search_schedule_epochs
from gmnas_cli.config.schema import SpaceConfig
from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.pipeline.stage import splitting_schedule_epochs
from gmnas_cli.spaces import build_space
from gmnas_cli.stages import split, warmup
from gmnas_cli.training.trainer import cosine_lr

from .conftest import make_cfg, run_cli

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def official_lr(t: int, total: int = 60, lr: float = 0.025, lr_min: float = 0.001) -> float:
    """torch CosineAnnealingLR(T_max=total, eta_min=lr_min) after t scheduler steps."""
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * t / total)) / 2


def official_tau(t: int, total: int = 60, tau_max: float = 1.0, tau_min: float = 0.1) -> float:
    """GM-NAS utils.TempScheduler.decay_whole_process after t steps."""
    return max((1 - t / total) * (tau_max - tau_min) + tau_min, tau_min)


def curve(path) -> dict[int, dict[str, float]]:
    with open(path) as f:
        return {int(r["epoch"]): {k: float(v) for k, v in r.items()} for r in csv.DictReader(f)}


def test_nb201_split_schedule_equals_the_official_formula_at_the_split_epochs():
    """paper_nb201_gm_snas (splits at 15 and 30, 30 search epochs): the split phase's lr cosine and
    tau span the 60 epochs, as the official root scheduler and TempScheduler do."""
    cfg = make_cfg("outputs", "experiment=paper_nb201_gm_snas", "dataset.root=data", "benchmark.path=b.csv")
    total = splitting_schedule_epochs(cfg)
    assert total == run_epochs(cfg) == 60
    algo = build_algorithm(cfg.algo, *_tiny_net())
    t = cfg.train
    for epoch, lr, tau in ((15, 0.021485, 0.775), (30, 0.013, 0.55)):  # the two split epochs
        assert cosine_lr(t.lr, t.lr_min, epoch, total) == pytest.approx(official_lr(epoch), rel=1e-9)
        algo.epoch_start(epoch, total)
        assert algo.tau == pytest.approx(official_tau(epoch), rel=1e-9)
        assert official_lr(epoch) == pytest.approx(lr, abs=1e-6) and official_tau(epoch) == pytest.approx(tau)
    # Search phase: the official NB201 lr keeps T_max = 60 for the restarted 30 epochs (preset:
    # train.search_schedule=run); the DARTS space restarts the cosine (restart, the default).
    assert search_schedule_epochs(cfg) == 60
    assert search_schedule_epochs(make_cfg("outputs", "space=darts")) == 15


def _tiny_net():
    space = build_space(SpaceConfig(name="nb201", ops=NB201_OPS, C=4, N=1), 10, 1)
    return space, space.build_supernet(space.full_mask())


def test_children_continue_the_parents_schedule_and_share_the_edge_permutation(cfg_factory):
    """A short SNAS run: children's curves continue the parent's lr/tau over the whole run, and the
    random criterion's second split uses the same edge in both branches (one global permutation,
    official random-perm, the Few-Shot rule)."""
    cfg = cfg_factory("experiment=smoke", "space=nb201", "algo=snas", "criterion=random", "warmup_epochs=2",
                      "splits=2", "search_epochs=4", "train.max_steps_per_epoch=1", "dataset.limit=64",
                      "train.batch_size=16", "name=sched")
    total = splitting_schedule_epochs(cfg)
    assert total == 8
    warmup.main(cfg)
    split.main(cfg)
    root = f"{cfg.out_dir}/{cfg.name}"
    tree = PartitionTree.load(f"{root}/tree.json")
    kids = tree.nodes[0].split["children"]
    c = curve(f"{root}/nodes/{kids[0]}/curve.csv")
    assert sorted(c) == [1, 2, 3, 4]  # the parent's 2 epochs, then its own 2
    for epoch in range(4):  # record epoch+1 holds the lr/tau used during epoch `epoch`
        assert c[epoch + 1]["lr"] == pytest.approx(official_lr(epoch, total), rel=1e-5)
        assert c[epoch + 1]["tau"] == pytest.approx(official_tau(epoch, total), rel=1e-5)
    second = {tree[k].split["edge"] for k in kids}
    assert len(second) == 1 and second != {tree.nodes[0].split["edge"]}  # same edge in every branch


def test_paper_presets_on_the_command_line():
    out = run_cli("split", "experiment=paper_nb201_gm_darts", "--cfg", "job")
    assert out.returncode == 0, out.stderr
    algo = out.stdout.split("\nalgo:\n", 1)[1].split("\n\n")[0] if "\nalgo:\n" in out.stdout else out.stdout
    assert "  name: darts" in algo and "  order: 2" in algo
    out = run_cli("split", "experiment=paper_darts_gm_snas", "--cfg", "job")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "tau_min: 0.03" in text
    ops = text.split("  ops:\n", 1)[1].split("\n  C:", 1)[0].split("\n")
    assert len(ops) == 7 and "  - none" not in ops


def test_restarted_leaves_draw_their_own_seeded_init_and_alpha(cfg_factory):
    """Official restart builds a new model per leaf; alpha starts at 1e-3 * N(0, 1) (DARTS)."""
    import torch

    from gmnas_cli.pipeline.runtime import Runtime
    from gmnas_cli.pipeline.stage import build_trainer

    rt = Runtime(cfg_factory("experiment=smoke", "space=nb201", "algo=darts", "name=init"))
    mask = rt.space.full_mask()
    first = {k: build_trainer(rt, mask, "t", init=k) for k in ("root", 1, 2)}
    again = build_trainer(rt, mask, "t", init=1)
    w = {k: torch.cat([p.detach().reshape(-1) for p in t.net.parameters()]) for k, t in first.items()}
    assert not torch.equal(w[1], w[2]) and not torch.equal(w[1], w["root"])
    assert torch.equal(w[1], torch.cat([p.detach().reshape(-1) for p in again.net.parameters()]))
    alpha = first[1].algo.alpha.detach()
    assert torch.equal(alpha, again.algo.alpha.detach()) and not torch.equal(alpha, first[2].algo.alpha.detach())
    assert 0.5e-3 < float(alpha.std()) < 2e-3 and float(alpha.abs().max()) < 1e-2
