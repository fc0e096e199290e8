"""Bad input: each gives one line ``gmnas <cmd>: error: ...`` naming the problem, a non-zero exit,
and leaves the experiment's existing files untouched (hashed before and after) with no temporary
file behind. The commands run in-process through the console script's code (``run_command``);
``test_cli_subprocess_one_line`` checks the real console script once.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from tests._reliability import (
    SMALL,
    copy_experiment,
    error_lines,
    hash_files,
    read_curve,
    run_inproc,
    temp_files,
)
from tests.conftest import run_cli


@pytest.fixture
def exp(tmp_path, small_ref) -> Path:
    """A private copy of a finished small experiment ``e`` under ``tmp_path``."""
    return copy_experiment(small_ref, tmp_path)


def fails(tmp_path: Path, command: str, *overrides: str, exit_code: int = 2, base: list[str] = SMALL) -> str:
    """Run ``gmnas command`` on ``tmp_path``; check one error line, the exit code, no file changed and
    no temporary file left; returns the error line."""
    before = hash_files(tmp_path)
    code, err = run_inproc(command, *base, f"out_dir={tmp_path}", *overrides)
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gmnas {command}: error: "), lines[0]
    assert code == exit_code, (code, lines[0])
    assert hash_files(tmp_path) == before
    assert not temp_files(tmp_path)
    return lines[0].removeprefix(f"gmnas {command}: error: ")


def reopen_search(exp: Path, leaf: int) -> None:
    """Make ``leaf``'s search start over (no checkpoint, no result)."""
    for rel in ("status/search.json", "status/select.json", "selection.json", f"search/{leaf}/result.json",
                f"search/{leaf}/ckpt.pt", f"search/{leaf}/ckpt.pt.prev"):
        (exp / rel).unlink()


def test_unknown_key(tmp_path, exp):
    assert fails(tmp_path, "search", "spltis=3") == "Could not override 'spltis'; Key 'spltis' not in 'Config'"


def test_ill_typed_value(tmp_path, exp):
    msg = fails(tmp_path, "warmup", "seed=abc")
    assert msg == "Error merging override seed=abc; Value 'abc' of type 'str' could not be converted to Integer"
    msg = fails(tmp_path, "warmup", "device=gpu")
    assert msg == "Error merging override device=gpu; Invalid value 'gpu', expected one of [auto, cpu, cuda]"


def test_unknown_option_lists_the_valid_ones(tmp_path, exp):
    msg = fails(tmp_path, "warmup", "criterion=gradmatch")
    assert msg.startswith("In 'config': Could not find 'criterion/gradmatch'; Available options in 'criterion': ")
    assert "exhaustive, gm, none, random" in msg


@pytest.mark.parametrize(("overrides", "message"), [
    (["branching=9"], "branching=9 exceeds the 5 splittable ops of an edge (none, skip_connect, nor_conv_1x1, "
                      "nor_conv_3x3, avg_pool_3x3)"),
    (["splits=7"], "splits=7 exceeds the 6 splittable edges of space nb201"),
    (["branching=[2,3,2]"], "branching=[2, 3, 2] has 3 values but splits=2"),
    (["criterion.edge_selection=['1<-0','9<-9']"],
     "criterion.edge_selection: unknown edge '9<-9'; valid: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2"),
])
def test_impossible_split_settings(tmp_path, exp, overrides, message):
    assert fails(tmp_path, "split", *overrides) == message


def test_missing_dataset_root_and_files(tmp_path, exp):
    # a new experiment name: the data set is checked before anything is written
    msg = fails(tmp_path, "warmup", "dataset=cifar10", "dataset.root=/nonexistent", "name=c10")
    assert msg.startswith("dataset cifar10: /nonexistent does not exist or is not a folder; expected ")
    empty = tmp_path / "empty"
    empty.mkdir()
    msg = fails(tmp_path, "warmup", "dataset=cifar10", f"dataset.root={empty}", "name=c10")
    assert msg.startswith(f"dataset cifar10: {empty}") and " is missing" in msg


def test_missing_benchmark_file(tmp_path, exp):
    """Checked in preflight: even a forced select keeps its selection when the table is missing."""
    msg = fails(tmp_path, "select", "benchmark=nb201", f"benchmark.path={tmp_path}/no.csv", "force=true")
    assert msg == f"select: benchmark.path={tmp_path}/no.csv does not exist (benchmark=nb201)"


def test_missing_predecessor_names_the_command(tmp_path, exp):
    # deps=never restores the refusal (by default a stage runs its predecessors: tests/test_deps.py)
    msg = fails(tmp_path, "search", "name=empty", "deps=never")
    assert msg == (f"search: stage 'warmup' has not completed in {tmp_path / 'empty'}; run `gmnas warmup` "
                   f"first (with the same config)")
    (exp / "status/split.json").unlink()
    (exp / "status/search.json").unlink()
    assert "run `gmnas split` first" in fails(tmp_path, "search", "deps=never")


def test_bad_data_fails_before_predecessors_write(tmp_path, exp):
    # deps=auto on a new experiment: the data set is checked before warmup writes anything
    for command in ("search", "retrain"):  # retrain itself reads no data, its predecessors do
        msg = fails(tmp_path, command, "dataset=cifar10", "dataset.root=/nonexistent", "name=c10")
        assert msg.startswith("dataset cifar10: /nonexistent does not exist")


def test_not_a_leaf(tmp_path, exp):
    reopen_search(exp, 3)
    assert fails(tmp_path, "search", "leaf=4") == "leaf=4: the tree has 4 leaves; valid: leaf=0..3 (nodes 3, 4, 5, 6)"


def test_rerun_with_another_config_needs_force(tmp_path, exp):
    msg = fails(tmp_path, "warmup", "seed=1")
    assert msg == (f"warmup: {exp} was made with a different config (seed=1, was 0, from stage 'warmup'); "
                   f"use another name=... or force=true")
    # a stage that is complete refuses as well, and a later stage too
    assert fails(tmp_path, "search", "train.lr=0.05") == (
        f"search: {exp} was made with a different config (train.lr=0.05, was 0.025, from stage 'search'); "
        f"use another name=... or force=true")
    code, err = run_inproc("warmup", *SMALL, f"out_dir={tmp_path}", "seed=1", "force=true")
    assert code == 0, err
    assert not (exp / "status/split.json").exists() and not (exp / "search").exists()  # invalidated
    assert '"seed": 1' in (exp / "config/warmup.json").read_text()


def test_nan_loss_names_stage_node_epoch_and_step(tmp_path, exp):
    before = hash_files(exp)
    code, err = run_inproc("warmup", *SMALL, f"out_dir={tmp_path}", "train.lr=1e30", "name=nan")
    assert code == 3
    assert error_lines(err) == ["gmnas warmup: error: warmup: warmup/node0, epoch 1, step 2: loss is nan; "
                                "stopping (lower train.lr or check the data)"]
    assert hash_files(exp) == before
    assert not (tmp_path / "nan/nodes/0/ckpt.pt").exists() and not temp_files(tmp_path)


def test_nan_loss_in_a_leaf_names_the_leaf(tmp_path, exp):
    before = hash_files(exp / "nodes")
    code, err = run_inproc("search", *SMALL, f"out_dir={tmp_path}", "train.lr=1e30", "force=true")
    assert code == 3
    assert error_lines(err) == ["gmnas search: error: search: search/leaf3, epoch 1, step 2: loss is nan; "
                                "stopping (lower train.lr or check the data)"]
    assert not (exp / "search/3/ckpt.pt").exists()  # nothing of the diverged run is kept
    assert hash_files(exp / "nodes") == before and not temp_files(tmp_path)


def test_out_dir_that_cannot_be_created(tmp_path, exp):
    """Root ignores permissions, so the unwritable place is a path under a regular file."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    msg = fails(tmp_path, "warmup", f"out_dir={blocker}/out", exit_code=4)
    assert msg == f"Not a directory ({blocker}/out/e)"


def test_permission_denied_on_write(tmp_path, exp, monkeypatch):
    reopen_search(exp, 3)
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).endswith("ckpt.pt"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    assert fails(tmp_path, "search", exit_code=4) == f"Permission denied ({exp}/search/3/ckpt.pt)"


@pytest.mark.parametrize("target", ["ckpt.pt", "result.json"])
def test_disk_full(tmp_path, exp, small_ref, monkeypatch, target):
    """ENOSPC while writing a checkpoint or a result: one line naming the file, the temporary file
    removed, the previous files intact."""
    reopen_search(exp, 3)
    real_fsync = os.fsync

    def fsync(fd):
        if f".{target}." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    before = hash_files(tmp_path)
    code, err = run_inproc("search", *SMALL, f"out_dir={tmp_path}")
    assert error_lines(err) == [f"gmnas search: error: No space left on device ({exp}/search/3/{target})"]
    assert code == 4
    after = hash_files(tmp_path)
    curve = "e/search/3/curve.csv"  # rewritten after training: the same but for the seconds column
    assert read_curve(exp / "search/3/curve.csv") == read_curve(small_ref / "search/3/curve.csv")
    assert {k: after.get(k) for k in before if k != curve} == {k: v for k, v in before.items() if k != curve}
    assert set(after) - set(before) <= {"e/search/3/ckpt.pt", "e/search/3/ckpt.pt.prev"}  # whole epochs
    assert not temp_files(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(tmp_path, exp):
    assert fails(tmp_path, "warmup", "device=cuda", "name=gpu") == (
        "device=cuda but no CUDA device is available; use device=auto or device=cpu")


def test_cli_subprocess_one_line(tmp_path, exp):
    """The console script itself: one line on stderr, exit code, nothing changed."""
    before = hash_files(tmp_path)
    res = run_cli("search", *SMALL, f"out_dir={tmp_path}", "seed=abc")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "gmnas search: error: Error merging override seed=abc; Value 'abc' of type 'str' could not be "
        "converted to Integer"]
    assert hash_files(tmp_path) == before


def test_resume_on_another_device_type_is_refused(tmp_path, exp):
    """The resolved device type is part of the identity (``amp`` is bf16 on CUDA only)."""
    snap = exp / "config" / "warmup.json"
    ident = json.loads(snap.read_text())
    assert ident["device_type"] == "cpu" and ident["amp"] is False  # fp32, as the official code
    snap.write_text(json.dumps({**ident, "device_type": "cuda"}))
    assert fails(tmp_path, "warmup") == (f"warmup: {exp} was made with a different config (device_type='cpu', "
                                         f"was 'cuda', from stage 'warmup'); use another name=... or force=true")
    del ident["device_type"]  # a snapshot from before the device type was recorded: still resumes
    snap.write_text(json.dumps(ident))
    code, err = run_inproc("warmup", *SMALL, f"out_dir={tmp_path}")
    assert code == 0, err
