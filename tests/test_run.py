"""`gmnas run` chains the stages; a second run does no work; force=true redoes every stage."""

from __future__ import annotations

import json

from tests._reliability import copy_experiment, run_inproc

STAGES = ("warmup", "split", "search", "select", "retrain")


def test_run_twice_is_a_noop_and_force_redoes(tmp_path, smoke_run):
    root = copy_experiment(smoke_run, tmp_path)  # the first run: the shared fixture's
    args = ("experiment=smoke", f"out_dir={tmp_path}")
    for stage in STAGES:
        assert (root / "status" / f"{stage}.json").exists()
    sel = json.loads((root / "selection.json").read_text())
    assert sel["arch"] in (root / "report" / "nb201.md").read_text()  # the table shows the derived string
    finished = {s: json.loads((root / "status" / f"{s}.json").read_text())["finished"] for s in STAGES}

    code, err = run_inproc("run", *args)
    assert code == 0, err
    for stage in STAGES:
        assert f"{stage}: already complete" in err
        assert json.loads((root / "status" / f"{stage}.json").read_text())["finished"] == finished[stage]
    assert " epoch 1/" not in err and "GM node" not in err  # no training, no scoring

    code, err = run_inproc("run", *args, "force=true")
    assert code == 0, err
    for stage in STAGES:
        assert f"{stage}: already complete" not in err
        assert json.loads((root / "status" / f"{stage}.json").read_text())["finished"] > finished[stage]
    assert json.loads((root / "selection.json").read_text())["arch"] == sel["arch"]  # same seed, same result
