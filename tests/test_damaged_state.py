"""Damaged state: a one-line error naming the file and the recovering command, or an exact resume;
never a dead end, never a traceback. Also one run per stage and Ctrl-C / SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gmnas_cli.infra.locks import stage_lock
from tests._reliability import (
    SMALL,
    compare_experiments,
    copy_experiment,
    error_lines,
    hash_files,
    run_forked,
    run_inproc,
)
from tests.conftest import REPO


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    data = change(data) or data
    path.write_text(json.dumps(data))


def _one_line(code: int, err: str, *parts: str) -> str:
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err
    for p in parts:
        assert p in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def exp(tmp_path, small_ref) -> Path:
    return copy_experiment(small_ref, tmp_path)


def run(stage: str, out: Path, *extra: str) -> tuple[int, str]:
    return run_inproc(stage, *SMALL, f"out_dir={out}", *extra)


def test_a_garbled_tree_is_named_and_split_force_rebuilds_it(exp, small_ref):
    (exp / "tree.json").write_text("{garbage")
    code, err = run("split", exp.parent)
    line = _one_line(code, err, "tree.json: not valid JSON", "`gmnas split force=true` rebuilds")
    assert "already complete" not in err, line
    code, err = run("split", exp.parent, "force=true")
    assert code == 0, err
    compare_experiments(small_ref, exp, ["tree.json"])


def test_a_missing_tree_is_marked_in_status_and_warmup_rebuilds_it(exp, small_ref):
    (exp / "tree.json").unlink()
    code, err = run_inproc("status", f"out_dir={exp.parent}")
    assert code == 0, err  # the overview still lists every experiment
    code, err = run_inproc("status", f"out_dir={exp.parent}", "name=e")
    _one_line(code, err, "tree.json: missing although the split is complete")
    code, err = run("split", exp.parent)
    _one_line(code, err, "tree.json is missing; run `gmnas warmup` first")
    assert run("warmup", exp.parent)[0] == 0  # rebuilds the root, not "already complete"
    code, err = run("split", exp.parent)
    assert code == 0, err
    compare_experiments(small_ref, exp, ["tree.json", "nodes/0/ckpt.pt"])


def test_a_corrupted_warmup_checkpoint_is_redone_not_already_complete(exp, small_ref):
    ckpt = exp / "nodes/0/ckpt.pt"
    raw = bytearray(ckpt.read_bytes())
    raw[-3] ^= 0x10
    ckpt.write_bytes(bytes(raw))
    (exp / "nodes/0/ckpt.pt.prev").unlink(missing_ok=True)
    code, err = run("warmup", exp.parent)
    assert code == 0 and "is corrupted or missing" in err and "redoing" in err, err
    assert not (exp / "status/split.json").exists()  # the split follows the redone warmup ...
    assert run("split", exp.parent)[0] == 0  # ... with the same seeds: the same tree
    compare_experiments(small_ref, exp, ["nodes/0/ckpt.pt", "tree.json", "nodes/1/ckpt.pt"])


LEAF_EDITS = {
    "val_loss-abc": (lambda d: d.update(val_loss="abc"), "val_loss='abc' is not a finite number"),
    "negative-loss": (lambda d: d.update(val_loss=-1.0), "val_loss=-1.0 is not a finite number"),
    "unknown-leaf": (lambda d: d.update(leaf=99), "leaf 99 is not a leaf of the partition tree"),
    "bad-arch": (lambda d: d.update(arch="|nor_conv_3x3~²|+|none~0|none~1|+|none~0|none~1|none~2|"),
                 "arch does not parse"),
}


@pytest.mark.parametrize("edit", list(LEAF_EDITS))
def test_a_damaged_leaf_result_is_named_by_select_and_marked_by_status(exp, edit):
    change, message = LEAF_EDITS[edit]
    leaf = sorted((exp / "search").iterdir())[0]
    _edit(leaf / "result.json", change)
    before = hash_files(exp)
    code, err = run("select", exp.parent, "force=true")
    _one_line(code, err, f"{leaf / 'result.json'}: {message}", "rerun `gmnas search`")
    code, err = run_inproc("status", f"out_dir={exp.parent}", "status.format=json")
    assert code == 0, err
    assert hash_files(exp) == before  # refused before the discard: the old selection stays


@pytest.mark.parametrize("content, message", [("[]", "expected a JSON object, found list"),
                                              ('{"stage": "warmup", "seconds": "abc"}', "seconds='abc'")])
def test_a_damaged_status_record_is_named(exp, content, message):
    (exp / "status/warmup.json").write_text(content)
    code, err = run("split", exp.parent)
    _one_line(code, err, f"{exp / 'status/warmup.json'}: {message}", "rerun `gmnas warmup`")
    code, err = run_inproc("status", f"out_dir={exp.parent}")
    assert code == 0, err


def test_a_poisoned_gm_progress_file_is_named_itself(exp):
    (exp / "status/split.json").unlink()
    progress = exp / "nodes/0/gm_progress_0.json"
    _edit(progress, lambda d: next(iter(d.values())).update(cut_cost="x"))
    for d in (exp / "nodes").iterdir():
        if d.name != "0":
            shutil.rmtree(d)
    _edit(exp / "tree.json", lambda t: t.update(nodes=[{**t["nodes"][0], "split": None}]))
    code, err = run("split", exp.parent)
    _one_line(code, err, f"{progress}: cut_cost='x'", "rerun `gmnas split`")


def test_a_second_run_of_a_stage_is_refused_naming_the_holder(exp):
    with stage_lock(exp, "split"):  # another run of `gmnas split` holds the stage
        code, err = run("split", exp.parent, "force=true")
        line = _one_line(code, err, "another run holds", f"pid {os.getpid()} on ")
        assert "split" in line
    before = hash_files(exp)
    with stage_lock(exp, "search"):  # force on an earlier stage while a later one runs
        code, err = run("split", exp.parent, "force=true")
        _one_line(code, err, "force=true would delete the files of `gmnas search`, which is running")
    assert hash_files(exp) == before


SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]


@pytest.mark.parametrize("sig, rc", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_with_one_line_and_the_rerun_resumes_exactly(exp, small_ref, sig, rc):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "gmnas_cli", "split", *SMALL, f"out_dir={exp.parent}", "force=true", "quiet=false"]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    err = []
    for line in proc.stderr:  # signal once the split is under way (GM scoring of the root)
        err.append(line)
        if "GM node 0 edge" in line:
            proc.send_signal(sig)
            break
    err += proc.stderr.read()
    assert proc.wait(timeout=120) == rc, "".join(err)
    text = "".join(err)
    assert "Traceback" not in text, text
    lines = error_lines(text)
    assert len(lines) == 1 and lines[0].startswith("gmnas split: interrupted during split"), lines
    assert lines[0].endswith("rerun the same command to resume"), lines
    code, out = run("split", exp.parent)
    assert code == 0, out
    compare_experiments(small_ref, exp, ["tree.json"] + [f"nodes/{i}/ckpt.pt" for i in range(1, 7)])


# -- property tests: any damage of any file of a finished experiment --------------------------------

def _damage(path: Path, kind: str, at: float) -> None:
    raw = path.read_bytes()
    i = int(at * max(len(raw) - 1, 0))
    if kind == "truncate":
        path.write_bytes(raw[:i])
    elif kind == "bitflip" and raw:
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 0x04]) + raw[i + 1:])
    else:  # garble: plausible-looking text of the wrong shape
        path.write_bytes(b'{"nodes": 3, "leaf": "x", "val_loss": -1}' if kind == "garble" else b"\xff\xfe\x00")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.relative_to(root).parts[0] != "locks")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, small_ref) -> tuple[Path, list[str]]:
    return small_ref, _files(small_ref)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damaged_file_gives_one_line_or_an_exact_resume(tmp_path_factory, finished, data):
    ref, files = finished
    rel = data.draw(st.sampled_from(files), label="file")
    kind = data.draw(st.sampled_from(["truncate", "bitflip", "garble", "binary"]), label="damage")
    at = data.draw(st.floats(0, 1), label="at")
    out = tmp_path_factory.mktemp("damaged")
    exp = copy_experiment(ref, out)
    _damage(exp / rel, kind, at)
    before = {k: v for k, v in hash_files(exp).items() if k != rel}
    for cmd in (["select"], ["status", f"out_dir={out}"]):
        args = [*SMALL, f"out_dir={out}"] if cmd[0] == "select" else cmd[1:]
        code, err = run_inproc(cmd[0], *args)  # an exception other than SystemExit fails the test here
        if code:
            lines = error_lines(err)
            assert code == 2 and len(lines) == 1, err
    after = hash_files(exp)
    changed = [k for k, v in before.items() if after.get(k) != v and not k.startswith(("status/", "config/"))]
    assert not changed, (rel, kind, changed)


@pytest.fixture(scope="module")
def mid_split(tmp_path_factory, small_ref) -> tuple[Path, list[str]]:
    """A copy of the finished experiment with its split redone and SIGKILLed mid GM scoring."""
    out = tmp_path_factory.mktemp("mid_split")
    exp = copy_experiment(small_ref, out)
    run_forked("split", *SMALL, f"out_dir={out}", "force=true", kill="write:gm_progress_0.json:3")
    return exp, _files(exp)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damaged_file_of_an_interrupted_split_gives_one_line_or_a_resume(tmp_path_factory, mid_split, data):
    ref, files = mid_split
    rel = data.draw(st.sampled_from(files), label="file")
    kind = data.draw(st.sampled_from(["truncate", "bitflip", "garble", "binary"]), label="damage")
    out = tmp_path_factory.mktemp("damaged_split")
    exp = copy_experiment(ref, out)
    _damage(exp / rel, kind, data.draw(st.floats(0, 1), label="at"))
    for cmd, args in (("split", [*SMALL, f"out_dir={out}"]), ("status", [f"out_dir={out}"])):
        code, err = run_inproc(cmd, *args)  # an exception other than SystemExit fails the test here
        if code:
            assert code == 2 and len(error_lines(err)) == 1, err
