"""Helpers of the reliability tests: run a command in-process or killed, hash and compare experiments."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from gmnas_cli.cli.app import run_command
from gmnas_cli.infra.io import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``gmnas args`` in a subprocess; returns the completed process (never raises)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "gmnas_cli", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


# Wall-clock fields: the only values allowed to differ between an interrupted and a clean run.
VOLATILE = {"seconds", "finished"}


def run_inproc(command: str, *args: str) -> tuple[int, str]:
    """``gmnas command args`` in this process (same code path as the console script, no start-up
    cost); returns (exit code, stderr with the ``[gmnas]`` log lines)."""
    err = io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("[gmnas] %(message)s"))
    logging.getLogger("gmnas").addHandler(handler)
    code = 0
    try:
        with contextlib.redirect_stderr(err):
            try:
                run_command(command, list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        logging.getLogger("gmnas").removeHandler(handler)
    return code, err.getvalue()


def run_killed(command: str, *args: str, kill: str) -> None:
    """Run ``gmnas command args`` as a subprocess that SIGKILLs itself at the event ``kill``
    (``GMNAS_TEST_KILL_AFTER``, see ``gmnas_cli.infra.failpoints.kill_point``); it must die by the signal."""
    res = run_cli(command, *args, env={"GMNAS_TEST_KILL_AFTER": kill})
    assert res.returncode == -9, (f"{command} {kill}: expected SIGKILL, got {res.returncode}\n"
                                  f"{res.stderr[-2000:]}")


def run_forked(command: str, *args: str, kill: str) -> None:
    """As ``run_killed``, but in a fork of this process: the same stage code without a new
    interpreter's start-up (torch runs single-threaded in the tests, so forking is safe)."""
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 98
        try:
            os.environ["GMNAS_TEST_KILL_AFTER"] = kill
            code = run_inproc(command, *args)[0]
        finally:
            os._exit(100 + code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code == -9, f"{command} {kill}: expected SIGKILL, got exit status {code}"


# Small settings: splits=2 (GM scoring, child training between splits, 4 leaves), a few seconds a stage.
SMALL = ["experiment=smoke", "criterion=gm", "splits=2", "warmup_epochs=2", "search_epochs=2",
         "criterion.batches=2", "name=e"]
STAGES = ["warmup", "split", "search", "select"]


def clean_run(out_dir: Path, overrides: list[str], stages: list[str] = STAGES) -> Path:
    """Run ``stages`` uninterrupted (in-process) into ``out_dir``; returns the experiment root."""
    for stage in stages:
        code, err = run_inproc(stage, *overrides, f"out_dir={out_dir}")
        assert code == 0, err
    return out_dir / "e"


@contextlib.contextmanager
def built_once(tmp_path_factory, name: str, done: str):
    """A session folder ``name`` that one process builds and every test reuses: under pytest-xdist
    (``make test`` runs 2 workers) the folder is shared by the workers of this run, and the first
    builds it under a lock while the others wait. Yields (folder, whether to build it)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # <run>/popen-gw<k>: <run> is this run's, shared by workers
        base = base.parent
    out = base / name
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f"{name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            build = not (out / done).exists()
            if build:
                shutil.rmtree(out, ignore_errors=True)
            yield out, build
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# A stage typed on a new experiment (tests/test_deps.py), logging to TensorBoard (tests/test_tblog.py).
TINY = ["experiment=smoke", "splits=1", "search_epochs=2", "name=d", "logger=tensorboard"]


def copy_experiment(src: Path, out_dir: Path) -> Path:
    """Copy an experiment under another ``out_dir`` as if it had been made there (the config
    snapshots name ``out_dir``), so that rerunning a stage rewrites identical snapshots."""
    dst = Path(out_dir) / src.name
    shutil.copytree(src, dst)
    for snap in (dst / "config").glob("*.yaml"):
        snap.write_text("".join(f"out_dir: {out_dir}\n" if line.startswith("out_dir:") else line
                                for line in snap.read_text().splitlines(True)))
    return dst


def error_lines(stderr: str) -> list[str]:
    """Lines of stderr that are not log lines (``[gmnas] ...``)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("[gmnas]")]


def hash_files(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative path -> digest)."""
    root = Path(root)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not _is_lock(p.relative_to(root))}


def _is_lock(rel: Path) -> bool:
    """Lock files (``<experiment>/locks/``) name their last holder's pid: bookkeeping, not an artefact."""
    return len(rel.parts) >= 2 and rel.parts[-2] == "locks"


def temp_files(root: Path) -> list[Path]:
    return sorted(Path(root).rglob("*.tmp"))


def strip_volatile(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: strip_volatile(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, (list, tuple)):
        return [strip_volatile(v) for v in obj]
    return obj


def assert_same(a: Any, b: Any, where: str) -> None:
    """Deep equality; tensors bit for bit (``torch.equal``, same dtype), wall-clock keys skipped."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where}: tensors differ"
    elif isinstance(a, dict):
        assert isinstance(b, dict), where
        ka, kb = set(a) - VOLATILE, set(b) - VOLATILE
        assert ka == kb, f"{where}: keys {sorted(map(str, ka ^ kb))} differ"
        for k in sorted(ka, key=str):
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"


def read_curve(path: Path) -> list[dict[str, str]]:
    """A curve's rows as strings, without the wall-clock ``seconds`` column."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]


def compare_experiments(a: Path, b: Path, only: list[str] | None = None) -> list[str]:
    """Assert two experiment directories hold the same artefacts; returns the files compared.

    ``.prev`` checkpoints and lock files are skipped (an interrupted run may hold more of them); every other file
    must exist in both and be equal: JSON exactly but for wall-clock keys, curves exactly but for
    the ``seconds`` column, checkpoints tensor by tensor, config snapshots but for ``out_dir``.
    ``only``: compare just these relative paths.
    """
    a, b = Path(a), Path(b)
    assert not temp_files(a) and not temp_files(b), (temp_files(a), temp_files(b))
    fa = {str(p.relative_to(a)) for p in a.rglob("*")
          if p.is_file() and not p.name.endswith(".prev") and not _is_lock(p.relative_to(a))}
    fb = {str(p.relative_to(b)) for p in b.rglob("*")
          if p.is_file() and not p.name.endswith(".prev") and not _is_lock(p.relative_to(b))}
    if only is not None:
        fa, fb = fa & set(only), fb & set(only)
        assert fa == set(only), f"missing in {a}: {sorted(set(only) - fa)}"
    assert fa == fb, f"file sets differ: only in {a}: {sorted(fa - fb)}; only in {b}: {sorted(fb - fa)}"
    for rel in sorted(fa):
        pa, pb = a / rel, b / rel
        if rel.endswith(".json"):
            assert strip_volatile(json.loads(pa.read_text())) == strip_volatile(json.loads(pb.read_text())), rel
        elif rel.endswith(".csv"):
            assert read_curve(pa) == read_curve(pb), rel
        elif rel.endswith(".pt"):
            assert_same(load_checkpoint(pa, fallback=False), load_checkpoint(pb, fallback=False), rel)
        elif rel.endswith(".yaml"):
            strip = [ln for ln in pa.read_text().splitlines() if not ln.startswith("out_dir:")]
            assert strip == [ln for ln in pb.read_text().splitlines() if not ln.startswith("out_dir:")], rel
        else:
            assert pa.read_bytes() == pb.read_bytes(), rel
    return sorted(fa)
