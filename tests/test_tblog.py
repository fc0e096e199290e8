"""`logger=tensorboard`: event files with per-epoch loss, accuracy, lr, alpha entropy per edge and
the GM distance matrices, beside the CSV curves (which stay)."""

from __future__ import annotations

import pytest

from tests._reliability import run_inproc


def test_tensorboard_event_files(fresh_search):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, _ = fresh_search
    assert (root / "nodes/0/curve.csv").exists() and (root / "search/1/curve.csv").exists()  # CSV stays

    warm = EventAccumulator(str(root / "tensorboard/warmup_node0")).Reload()
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr"} <= set(warm.Tags()["scalars"])
    leaf = EventAccumulator(str(root / "tensorboard/search_leaf1")).Reload()
    tags = set(leaf.Tags()["scalars"])
    assert {f"alpha_entropy/{e}" for e in ("1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2")} <= tags
    assert [e.step for e in leaf.Scalars("train/loss")] == [1, 2]
    split = EventAccumulator(str(root / "tensorboard/split")).Reload()
    texts = split.Tags()["tensors"]  # add_text is stored as a tensor summary
    assert any(t.startswith("gm_distance/node0/") for t in texts)
    assert split.Tags()["images"]


def test_unknown_logger_is_one_line(tmp_path):
    code, err = run_inproc("warmup", "experiment=smoke", "logger=wandb", f"out_dir={tmp_path}")
    assert code == 2 and "logger='wandb' is not allowed; allowed one of csv, tensorboard" in err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
