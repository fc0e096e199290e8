"""Examples and acceptance: range errors before any write, a corrected command that then
runs without force, plain experiment names, no code executed from checkpoints or benchmark files."""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path

import pytest
import torch

from gmnas_cli.experiment.directory import Experiment
from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.infra.io import _MAGIC, UnsafeCheckpoint, load_checkpoint, prev_path, save_checkpoint
from gmnas_cli.pipeline.validate import validate
from tests._reliability import error_lines, run_inproc
from tests.conftest import make_cfg

FAST = ["experiment=smoke", "warmup_epochs=0"]  # warmup writes its tree, checkpoint, config and status


def gmnas(tmp_path: Path, command: str, *overrides: str) -> tuple[int, list[str]]:
    code, err = run_inproc(command, *FAST, f"out_dir={tmp_path}", *overrides)
    return code, error_lines(err)


@pytest.mark.parametrize(("override", "message"), [
    ("train.lr=-1", "train.lr=-1.0 is out of range; allowed > 0"),
    ("criterion.batches=0", "criterion.batches=0 is out of range; allowed >= 1"),
    ("threads=-4", "threads=-4 is out of range; allowed >= 0"),
    ("train.momentum=2", "train.momentum=2.0 is out of range; allowed >= 0 and < 1"),
    ("dataset.limit=-3", "dataset.limit=-3 is out of range; allowed >= 0"),
    ("train.grad_clip=-1", "train.grad_clip=-1.0 is out of range; allowed >= 0"),
    ("algo.tau_min=-1", "algo.tau_min=-1.0 is out of range; allowed > 0"),
])
def test_issue_examples_fail_first_and_write_nothing(tmp_path, override, message):
    code, lines = gmnas(tmp_path, "warmup", "name=e", override)
    assert (code, lines) == (2, [f"gmnas warmup: error: {message}"])
    assert not any(tmp_path.iterdir())  # no experiment folder, no snapshot


def test_corrected_command_runs_after_refusals(tmp_path):
    for bad in ("train.lr=-1", "algo.tau_min=-1", "name=../x"):
        assert gmnas(tmp_path, "warmup", "name=e", bad)[0] == 2
    assert gmnas(tmp_path, "warmup", "name=e") == (0, [])
    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")} == {"e"}  # all inside out_dir/<name>


def test_a_run_that_failed_before_any_artefact_does_not_bind(tmp_path):
    """A diverged warmup (NaN at step 2, before its first checkpoint) leaves its config snapshot; the
    corrected command runs without force=true, and a stage that did run still binds."""
    code, lines = gmnas(tmp_path, "warmup", "name=e", "warmup_epochs=1", "train.lr=1e30")
    assert code == 3 and (tmp_path / "e/config/warmup.json").exists()
    assert gmnas(tmp_path, "warmup", "name=e", "warmup_epochs=1") == (0, [])
    code, lines = gmnas(tmp_path, "warmup", "name=e", "warmup_epochs=1", "train.lr=0.05")
    assert code == 2 and "was made with a different config (train.lr=0.05, was 0.025" in lines[0]
    # its checkpoint (optimizer state, history floats, mask) is in forms weights_only accepts
    state = load_checkpoint(tmp_path / "e/nodes/0/ckpt.pt")
    assert {"model", "w_optimizer", "algo", "history", "mask"} <= set(state) and state["history"]


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", "..", "."])
def test_names_that_leave_out_dir(tmp_path, name):
    out = tmp_path / "a" / "outputs"
    code, lines = gmnas(out, "warmup", f"name={name}")
    assert code == 2 and lines[0].startswith(f"gmnas warmup: error: name='{name}' is not allowed; allowed one "
                                             "plain folder name")
    assert not any(tmp_path.iterdir())


def test_experiment_refuses_a_name_that_bypassed_validation(tmp_path):
    cfg = make_cfg(tmp_path, "experiment=smoke")
    cfg.name = "../escape"
    with pytest.raises(ConfigError, match=r"^name='\.\./escape' is not allowed"):
        Experiment(cfg)


# -- no code executed on load ------------------------------------------------------------------
class _RunsCode:
    """Unpickling this runs ``os.system``: what a tampered checkpoint could carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(path: Path, state: dict) -> None:
    """A checkpoint with a valid gmnas header (SHA-256 of the payload) around ``state``."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    path.write_bytes(_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    ckpt = tmp_path / "ckpt.pt"
    save_checkpoint(ckpt, {"model": {"w": torch.ones(2)}})
    save_checkpoint(ckpt, {"model": {"w": torch.ones(2)}})  # a good .prev exists: no silent fallback
    _plant(ckpt, {"model": {"w": torch.zeros(2)}, "x": _RunsCode(marker)})
    with pytest.raises(UnsafeCheckpoint) as err:
        load_checkpoint(ckpt)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"checkpoint {ckpt} holds more than tensors")
    assert "posix.system" in str(err.value)
    assert not marker.exists() and prev_path(ckpt).exists()


def test_rng_and_optimizer_states_load_with_weights_only(tmp_path):
    """The forms resumable state takes: torch RNG states (uint8 tensors), Python's RNG state, an
    optimizer's state dict."""
    import random

    opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1, betas=(0.5, 0.999))
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    state = {"rng": torch.Generator().manual_seed(3).get_state(), "py_rng": random.Random(3).getstate(),
             "optimizer": opt.state_dict(), "history": [{"epoch": 1, "loss": 0.5}], "mask": [[True, False]]}
    save_checkpoint(tmp_path / "s.pt", state)
    back = load_checkpoint(tmp_path / "s.pt")
    assert torch.equal(back["rng"], state["rng"]) and tuple(back["py_rng"][1]) == tuple(state["py_rng"][1])
    assert torch.equal(back["optimizer"]["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])


def test_tampered_checkpoint_in_an_experiment(tmp_path):
    """``gmnas split`` reading a planted node checkpoint: one line naming the file, exit 2, no code run."""
    assert gmnas(tmp_path, "warmup", "name=e") == (0, [])
    ckpt = tmp_path / "e/nodes/0/ckpt.pt"
    state = load_checkpoint(ckpt)
    marker = tmp_path / "ran"
    _plant(ckpt, {**state, "extra": _RunsCode(marker)})
    code, lines = gmnas(tmp_path, "split", "name=e")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"gmnas split: error: checkpoint {ckpt} holds more than tensors and plain containers")
    assert not marker.exists()


# -- benchmark files that need pickle ----------------------------------------------------------
def test_pickled_benchmark_needs_trust(tmp_path, caplog):
    cfg = make_cfg(tmp_path, "experiment=smoke", "benchmark=nb201", f"benchmark.path={tmp_path}/NAS-Bench-201.pth")
    with pytest.raises(ConfigError, match=r"benchmark.path=.*NAS-Bench-201.pth: official NAS-Bench-201 files are "
                                          r"pickles, which can run code on load; pass benchmark.trust_pickle=true"):
        validate(cfg, "select")
    cfg.benchmark.trust_pickle = True
    validate(cfg, "select")
    from gmnas_cli.benchmarks import load_benchmark

    with caplog.at_level(logging.WARNING, logger="gmnas"), pytest.raises(StageError, match="not found"):
        load_benchmark(cfg.benchmark)
    assert any("benchmark.trust_pickle=true" in r.getMessage() for r in caplog.records)


def test_csv_benchmark_needs_no_trust(tmp_path):
    cfg = make_cfg(tmp_path, "experiment=smoke", "benchmark=nb201", "benchmark.path=table.csv")
    validate(cfg, "select")  # a CSV table is read as text, no pickle involved


def test_json_artefacts_are_checked_before_use(tmp_path):
    from gmnas_cli.infra.io import read_json

    path = tmp_path / "selection.json"
    path.write_text('{"leaf": 3}')
    with pytest.raises(StageError, match=r"selection.json: expected a JSON object with leaf, arch; 'arch' is missing"):
        read_json(path, keys=("leaf", "arch"))
    path.write_text("[1, 2]")
    with pytest.raises(StageError, match="'leaf' is missing"):
        read_json(path, keys=("leaf", "arch"))
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(StageError, match="not valid JSON"):
        read_json(path)
