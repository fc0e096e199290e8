"""Successive halving's official protocol: rungs are epoch windows of the
candidates' real retrain runs, ranked on the held-out half, resumable after a kill."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gmnas_cli.data import ImageData
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.pipeline.validate import validate
from gmnas_cli.selection import halving
from gmnas_cli.selection.halving import _Run, successive_halving, window_weights
from gmnas_cli.training.retrain import NetworkTrainer

from .conftest import make_cfg

# 4 candidates; one window (epoch 0) keeps 2, which run to retrain.epochs=3 for the final pick.
OFFICIAL = ["experiment=smoke", "dataset.limit=64", "train.batch_size=8", "retrain.batch_size=16",
            "retrain.max_steps_per_epoch=1", "retrain.epochs=3", "select.criterion=successive_halving",
            "select.successive_halving.protocol=official", "select.successive_halving.window_start=[0]",
            "select.successive_halving.window_end=[1]"]


def _candidates(rt: Runtime, n: int = 4) -> list[dict]:
    gen = torch.Generator().manual_seed(3)
    sp = rt.space
    return [{"leaf": i + 1, "arch": sp.arch_to_str(sp.sample_arch(sp.full_mask(), gen))} for i in range(n)]


def test_official_protocol_continues_the_same_runs_and_never_reads_test(tmp_path, monkeypatch):
    def no_test(self):
        raise AssertionError("successive halving read the test split")

    monkeypatch.setattr(ImageData, "test", no_test)
    cfg = make_cfg(tmp_path, *OFFICIAL, "name=a")
    assert cfg.select.successive_halving.protocol.value == "official"
    rt = Runtime(cfg)
    cands = _candidates(rt)
    best, ev = successive_halving(rt, cands)
    (rung,) = ev["rungs"]
    assert rung["window"] == [0, 1] and len(rung["candidates"]) == 4 and len(rung["kept"]) == 2
    ranked = sorted(rung["candidates"], key=lambda leaf: (-rung["val_acc"][str(leaf)], rung["val_loss"][str(leaf)]))
    assert rung["kept"] == ranked[:2]
    # the survivors' runs continued to retrain.epochs; the others stopped after the window
    assert {int(k): v for k, v in ev["retrain_epochs"].items()} == {c["leaf"]: 3 if c["leaf"] in rung["kept"] else 1
                                                                    for c in cands}
    final = ev["final"]
    assert sorted(final["candidates"]) == sorted(rung["kept"])
    assert best["leaf"] == max(final["candidates"], key=lambda leaf: (final["val_acc"][str(leaf)],
                                                                      -final["val_loss"][str(leaf)]))
    again = successive_halving(Runtime(make_cfg(tmp_path, *OFFICIAL, "name=b")), cands)
    assert again == (best, {**ev, "seconds": again[1]["seconds"]})  # same seed: same decisions and figures


def test_official_protocol_resumes_exactly_after_a_kill(tmp_path, monkeypatch):
    cands = _candidates(Runtime(make_cfg(tmp_path, *OFFICIAL, "name=full")))
    _, full = successive_halving(Runtime(make_cfg(tmp_path, *OFFICIAL, "name=full")), cands)
    saves = {"n": 0}
    original = NetworkTrainer.save

    def killed_after_five(self, path):
        original(self, path)
        saves["n"] += 1
        if saves["n"] == 5:  # inside the survivors' continued runs
            raise KeyboardInterrupt

    monkeypatch.setattr(NetworkTrainer, "save", killed_after_five)
    with pytest.raises(KeyboardInterrupt):
        successive_halving(Runtime(make_cfg(tmp_path, *OFFICIAL, "name=cut")), cands)
    monkeypatch.setattr(NetworkTrainer, "save", original)
    _, resumed = successive_halving(Runtime(make_cfg(tmp_path, *OFFICIAL, "name=cut")), cands)
    strip = lambda e: {k: v for k, v in e.items() if k != "seconds"}  # noqa: E731
    assert strip(resumed) == strip(full)


def test_windows_must_fit_the_retrain_runs(tmp_path):
    cfg = make_cfg(tmp_path, *OFFICIAL, "select.successive_halving.window_end=[5]")
    with pytest.raises(ConfigError, match=r"window_end=\[5\] reaches beyond retrain.epochs=3"):
        validate(cfg, "select")
    validate(make_cfg(tmp_path, *OFFICIAL, "select.successive_halving.window_end=[5]",
                      "select.successive_halving.protocol=short_retrain"), "select")


def test_windows_beyond_the_retrain_runs_fail_at_start_up_and_write_nothing(tmp_path):
    from .conftest import run_cli

    res = run_cli("run", "experiment=smoke", f"out_dir={tmp_path / 'out'}", "select.criterion=successive_halving",
                  "select.successive_halving.protocol=official")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "reaches beyond retrain.epochs=1" in res.stderr and "protocol=short_retrain" in res.stderr
    assert not (tmp_path / "out").exists()


def test_moving_average_weights_are_the_official_recursion():
    """``moving_avg_of_list`` (skhu101/GM-NAS successive_halving.py), run literally, ranks like our weights."""
    for n in (1, 2, 5, 30, 69):
        w = window_weights(n, "moving")
        assert abs(sum(w) - 1) < 1e-12 and w[-1] > 0.899 and (n == 1 or abs(w[-2] / w[-1] - 0.1) < 1e-12)
        xs = [0.3 + 0.01 * ((7 * i) % 11) for i in range(n)]
        avg = 0.0
        for i, x in enumerate(xs):  # the official recursion
            avg = (avg * i * 0.1 + x * 0.9) / (i + 1)
        ours = sum(wi * x for wi, x in zip(w, xs))
        assert abs(ours * (1 - 0.1 ** n) / n - avg) < 1e-12  # a per-window constant factor apart
    assert window_weights(4, "mean") == [0.25] * 4


class _CurveRun(_Run):
    """A candidate whose held-out accuracy per epoch is a made-up curve (no training)."""

    curves: dict[int, list[float]] = {}

    def __init__(self, rt, cand, eval_epochs, cache_dir) -> None:
        self.leaf = cand["leaf"]
        self.trainer = SimpleNamespace(history=[], epoch=0, seconds=0.0)

    def advance(self, until: int) -> None:
        curve = self.curves[self.leaf]
        self.trainer.history = [{"val_acc": a, "val_loss": 1 - a} for a in curve[:until]]
        self.trainer.epoch = until


def test_moving_average_and_plain_mean_keep_different_leaves(tmp_path, monkeypatch):
    # leaves 1, 2 start fast and flatten; leaves 3, 4 start slow and end higher: the plain mean over
    # epochs 0-3 keeps {1, 2}, the official moving average (last epoch ~90 %) keeps {3, 4}
    _CurveRun.curves = {1: [0.50, 0.55, 0.56, 0.57, 0.60, 0.61], 2: [0.48, 0.54, 0.555, 0.565, 0.59, 0.60],
                        3: [0.10, 0.20, 0.40, 0.70, 0.80, 0.81], 4: [0.10, 0.20, 0.35, 0.66, 0.79, 0.82]}
    monkeypatch.setattr(halving, "_Run", _CurveRun)
    cands = [{"leaf": leaf, "arch": ""} for leaf in (1, 2, 3, 4)]
    picked = {}
    for average in ("moving", "mean"):
        cfg = make_cfg(tmp_path, *OFFICIAL, "retrain.epochs=6", "select.successive_halving.window_end=[4]",
                       f"select.successive_halving.average={average}")
        rt = SimpleNamespace(cfg=cfg, exp=SimpleNamespace(root=tmp_path / average))
        best, ev = successive_halving(rt, cands)
        assert ev["average"] == average
        picked[average] = (ev["rungs"][0]["kept"], best["leaf"])
    assert picked["moving"] == ([3, 4], 4) and picked["mean"] == ([1, 2], 1)
    assert make_cfg(tmp_path, *OFFICIAL).select.successive_halving.average.value == "moving"  # official default
