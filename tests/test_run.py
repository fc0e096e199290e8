"""`gmnas run` chains the stages; a second run does no work; force=true redoes every stage."""

from __future__ import annotations

import json

from tests.conftest import run_cli

STAGES = ("warmup", "split", "search", "select", "retrain")


def test_run_twice_is_a_noop_and_force_redoes(tmp_path):
    args = ("run", "experiment=smoke", "name=x", f"out_dir={tmp_path}")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    root = tmp_path / "x"
    for stage in STAGES:
        assert (root / "status" / f"{stage}.json").exists()
    sel = json.loads((root / "selection.json").read_text())
    assert sel["arch"] in (root / "report" / "nb201.md").read_text()  # the table shows the derived string
    finished = {s: json.loads((root / "status" / f"{s}.json").read_text())["finished"] for s in STAGES}

    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    for stage in STAGES:
        assert f"{stage}: already complete" in second.stderr
        assert json.loads((root / "status" / f"{stage}.json").read_text())["finished"] == finished[stage]
    assert " epoch 1/" not in second.stderr and "GM node" not in second.stderr  # no training, no scoring

    forced = run_cli(*args, "force=true")
    assert forced.returncode == 0, forced.stderr
    for stage in STAGES:
        assert f"{stage}: already complete" not in forced.stderr
        assert json.loads((root / "status" / f"{stage}.json").read_text())["finished"] > finished[stage]
    assert json.loads((root / "selection.json").read_text())["arch"] == sel["arch"]  # same seed, same result
