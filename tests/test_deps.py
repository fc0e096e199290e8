"""Stages bring their predecessors: a stage on a new experiment runs the missing ones
first, one line each; completed ones are reused, never redone; ``deps=never`` refuses."""

from __future__ import annotations

import json

import pytest

from tests._reliability import TINY, copy_experiment, run_inproc


def finished(root, stage: str) -> float:
    return json.loads((root / "status" / f"{stage}.json").read_text())["finished"]


def test_search_on_a_new_experiment_runs_warmup_and_split_first(tmp_path, fresh_search):
    src, err = fresh_search
    for stage in ("warmup", "split", "search"):
        assert (src / "status" / f"{stage}.json").exists(), stage
    assert "search: stage 'warmup' has not completed" in err and "running `gmnas warmup` first" in err
    assert "running `gmnas split` first" in err
    assert err.index("running `gmnas warmup` first") < err.index("running `gmnas split` first")
    root = copy_experiment(src, tmp_path)
    before = {s: finished(root, s) for s in ("warmup", "split", "search")}

    # select brings nothing: its predecessors are complete and are neither rerun nor retrained
    code, err = run_inproc("select", *TINY, f"out_dir={tmp_path}")
    assert code == 0, err
    assert "first" not in err and " epoch 1/" not in err
    assert {s: finished(root, s) for s in before} == before
    assert (root / "selection.json").exists()


@pytest.mark.parametrize("command", ["split", "search"])
def test_deps_never_refuses(tmp_path, command):
    code, err = run_inproc(command, *TINY, f"out_dir={tmp_path}", "deps=never")
    assert code == 2
    assert f"{command}: stage 'warmup' has not completed" in err and "run `gmnas warmup` first" in err
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_darts_snas_split_on_a_fresh_experiment(tmp_path):
    """The issue's first command: `gmnas split space=darts algo=snas splits=3` warms up, then splits."""
    code, err = run_inproc("split", "space=darts", "algo=snas", "splits=3", "experiment=smoke", "name=s",
                           f"out_dir={tmp_path}")
    assert code == 0, err
    tree = json.loads((tmp_path / "s" / "tree.json").read_text())
    assert sum(1 for n in tree["nodes"] if "split" not in n) == 8
    assert "running `gmnas warmup` first" in err


def test_a_running_predecessor_is_waited_for(tmp_path):
    """`select` while another process runs `search` waits for it instead of searching the same leaves."""
    import os
    import time

    from gmnas_cli.infra.locks import is_held

    code, err = run_inproc("split", *TINY, f"out_dir={tmp_path}")
    assert code == 0, err
    root = tmp_path / "d"
    pid = os.fork()  # the other process: this one's code without an interpreter start-up
    if pid == 0:
        status = 99
        try:
            status = run_inproc("search", *TINY, f"out_dir={tmp_path}")[0]
        finally:
            os._exit(status)
    try:
        deadline = time.time() + 120
        while not is_held(root, "search") and time.time() < deadline:
            time.sleep(0.02)
        assert is_held(root, "search"), "the other search never took its lock"
        code, err = run_inproc("select", *TINY, f"out_dir={tmp_path}")
    finally:
        other = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    assert code == 0 and other == 0, err
    assert "`gmnas search` is running in another process" in err
    assert "search/leaf" not in err  # the other process searched every leaf; select reran none
