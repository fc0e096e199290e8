"""The GPU fast paths, checked on CPU: the same numbers as the plain paths.

(GM scoring with ``criterion.batched_ops`` is checked in ``test_gm_fast.py``.)
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import open_dict

from gmnas_cli.bench.suite import build_ours, synthetic_data
from gmnas_cli.infra.errors import TrainingDiverged
from gmnas_cli.infra.seeding import generator


def test_predrawn_augmentation_gives_the_same_batches():
    """Augmentation drawn for the whole epoch up front (one copy to the device) = drawn per step,
    resumed mid-epoch included."""
    data = synthetic_data(40, 8, 0)
    split = data.halves()[0]
    for start in (0, 2):
        per_step = list(split.batches(6, 11, augment=True, drop_last=False, start=start, predraw=False))
        upfront = list(split.batches(6, 11, augment=True, drop_last=False, start=start, predraw=True))
        assert len(per_step) == len(upfront) == 4 - start
        for (xa, ya), (xb, yb) in zip(per_step, upfront):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def _trainer(cfg_factory, *overrides: str):
    cfg = cfg_factory("experiment=smoke", "space=nb201", "algo=darts", "criterion=gm", "space.C=4",
                      "space.N=1", *overrides)
    with open_dict(cfg):
        cfg.bench.batch_size = 8
    trainer, _ = build_ours(cfg, torch.device("cpu"), synthetic_data(64, 8, 0))
    return trainer


def test_deferred_finiteness_check_names_the_first_bad_step(cfg_factory):
    trainer = _trainer(cfg_factory, "train.lr=1e30", "train.finite_check_every=4")
    trainer.defer_checks = True  # the CUDA behaviour
    batch = next(trainer.train_split.batches(8, 0, drop_last=True))
    gen = generator(0, "t")
    with pytest.raises(TrainingDiverged, match=r"^step 2: loss is nan"):
        for step in range(4):  # the check runs after the 4th step and reports the 2nd
            trainer.train_step(batch, None, gen, f"step {step + 1}")


def test_deferred_checks_do_not_change_the_steps(cfg_factory):
    a, b = _trainer(cfg_factory), _trainer(cfg_factory)
    b.defer_checks = True
    batches = list(a.train_split.batches(8, 0, drop_last=True))[:3]
    arch = next(a.arch_split.batches(8, 1, drop_last=True))
    for t in (a, b):
        gen = generator(0, "t")
        losses = [t.train_step(x, arch, gen)[0] for x in batches]
        t.flush_checks()
        t.losses = torch.stack(losses)
    assert torch.equal(a.losses, b.losses)
    for pa, pb in zip(a.net.parameters(), b.net.parameters()):
        assert torch.equal(pa, pb)


def test_schedule_timing_runs_the_stages_end_to_end(cfg_factory):
    """``bench.schedule`` (the GPU suite's full-schedule timing), here on a tiny schedule on CPU."""
    from gmnas_cli.bench.schedule import supernet_epochs
    from gmnas_cli.bench.suite import run_bench

    cfg = cfg_factory("experiment=smoke", "space=nb201", "algo=darts", "criterion=gm", "space.C=4", "space.N=1",
                      "warmup_epochs=1", "splits=2", "branching=2", "search_epochs=1", "train.batch_size=8",
                      "train.max_steps_per_epoch=2", "criterion.batches=2", "bench.batch_size=8",
                      "bench.image_size=8", "bench.steps=1", "bench.gm_probe_batches=0", "bench.gm_compare=false",
                      "bench.schedule=true", "bench.schedule_images=64")
    assert supernet_epochs(cfg) == 1 + 2 * 1 + 4 * 1
    rows, _ = run_bench(cfg, torch.device("cpu"))
    by = {(r.metric, r.impl): r for r in rows}
    assert {("schedule_stage", s) for s in ("warmup", "split", "search")} <= set(by)
    total = by[("schedule_total", "ours")]
    assert total.value > 0 and "7 supernet-epochs of 32 images" in total.detail and "4 leaves" in total.detail


def test_gpu_suite_preset_composes(cfg_factory):
    from gmnas_cli.bench.schedule import supernet_epochs

    cfg = cfg_factory("experiment=bench_gpu")
    assert str(cfg.device.value if hasattr(cfg.device, "value") else cfg.device) == "cuda"
    assert cfg.bench.schedule and cfg.bench.reference == "xautodl" and cfg.train.batch_size == 64
    assert supernet_epochs(cfg) == 165  # 15 + 2 x 15 + 4 x 30
