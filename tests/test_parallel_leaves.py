"""Leaves searched as parallel Hydra jobs (joblib launcher) give the sequential run's results, write
only into their own folders, leave nothing half-written, and the last one completes the stage."""

from __future__ import annotations

import json

from tests._reliability import SMALL, compare_experiments, copy_experiment, run_inproc, temp_files
from tests.conftest import run_cli


def test_parallel_leaves_equal_sequential_and_complete_the_stage(tmp_path, small_ref):
    out_dir = tmp_path / "out"
    exp = copy_experiment(small_ref, out_dir)
    for rel in ("status/search.json", "status/select.json", "selection.json"):
        (exp / rel).unlink()
    for leaf in (exp / "search").iterdir():
        for f in leaf.iterdir():
            f.unlink()
        leaf.rmdir()
    # one leaf alone does not complete the stage
    code, err = run_inproc("search", *SMALL, f"out_dir={out_dir}", "leaf=1")  # the 2nd leaf: node 4
    assert code == 0, err
    assert "leaves [3, 5, 6] still to search" in err and not (exp / "status/search.json").exists()
    # all leaves as two parallel joblib workers, from an empty working directory
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    res = run_cli("search", "-m", "leaf=0,1,2,3", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *SMALL,
                  f"out_dir={out_dir}", cwd=cwd)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not any(cwd.iterdir())  # Hydra wrote nothing into the working directory
    assert (out_dir / "multirun/multirun.yaml").exists()  # the sweep dir is ${out_dir}/multirun
    status = json.loads((exp / "status/search.json").read_text())
    assert status["stage"] == "search" and status["leaves"] == [3, 4, 5, 6]
    assert not temp_files(out_dir)
    compare_experiments(small_ref / "search", exp / "search")  # every file, checkpoints tensor by tensor
    # the stage is complete: select runs and picks what the sequential run picked
    code, err = run_inproc("select", *SMALL, f"out_dir={out_dir}")
    assert code == 0, err
    compare_experiments(small_ref, exp, only=["selection.json"])
