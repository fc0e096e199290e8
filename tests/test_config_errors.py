"""Config errors fail before any work, naming the key and the allowed values."""

from __future__ import annotations

import pytest

from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.pipeline.validate import validate
from tests.conftest import run_cli


class _Result:
    def __init__(self, code: int, stderr: str) -> None:
        self.returncode, self.stderr = code, stderr


def run_cmd(command: str, *args: str) -> _Result:
    """``gmnas command args`` in-process (the console script's code path; one subprocess check of the
    one-line output is ``test_bad_input.test_cli_subprocess_one_line``)."""
    from tests._reliability import run_inproc

    return _Result(*run_inproc(command, *args))


def test_unknown_key_is_named(tmp_path):
    res = run_cmd("search", "spltis=3", f"out_dir={tmp_path}")
    assert res.returncode != 0
    assert "spltis" in res.stderr
    assert not any(tmp_path.iterdir())


def test_unknown_space_lists_valid_spaces(tmp_path):
    res = run_cmd("search", "space=dartz", f"out_dir={tmp_path}")
    assert res.returncode != 0
    assert "dartz" in res.stderr and "nb201" in res.stderr


def test_wrong_type_is_named(tmp_path):
    res = run_cmd("search", "seed=abc", f"out_dir={tmp_path}")
    assert res.returncode != 0
    assert "seed" in res.stderr and "abc" in res.stderr


def test_bad_enum_lists_values(tmp_path):
    res = run_cmd("warmup", "device=gpu", f"out_dir={tmp_path}")
    assert res.returncode != 0
    assert "device" in res.stderr and "cuda" in res.stderr


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["splits=7"], "splits=7"),
        (["branching=1"], "branching=1"),
        (["branching=6"], "branching=6"),
        (["splits=2", "branching=[2,3,2]"], "branching=[2, 3, 2]"),
        (["criterion=random", "criterion.edge_selection=cut_cost"], "cut_cost"),
        (["criterion.edge_selection=['1<-0','9<-9']"], "9<-9"),
        (["algo.order=3"], "algo.order=3"),
    ],
)
def test_impossible_split_settings(cfg_factory, overrides, needle):
    cfg = cfg_factory("experiment=smoke", *overrides)
    with pytest.raises(ConfigError, match=None) as err:
        validate(cfg, "split")
        from gmnas_cli.criteria import CRITERIA

        CRITERIA[cfg.criterion.name](cfg.criterion)
    assert needle in str(err.value)


def test_impossible_setting_exits_before_training(tmp_path):
    res = run_cmd("warmup", "experiment=smoke", "branching=9", f"out_dir={tmp_path}")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("gmnas warmup: error: branching=9")
    assert not any(tmp_path.iterdir())


def test_help_lists_every_subcommand():
    res = run_cli("--help")
    assert res.returncode == 0
    for cmd in ("warmup", "split", "search", "select", "retrain", "report", "run"):
        assert f"\n  {cmd} " in res.stdout


def test_command_help_and_cfg_job(tmp_path):
    res = run_cli("split", "--help")
    assert res.returncode == 0 and "space" in res.stdout and "criterion" in res.stdout
    res = run_cli("split", "space=nb201_4ops", "--cfg", "job")
    assert res.returncode == 0
    assert "skip_connect" in res.stdout and "- none" not in res.stdout


def test_tab_completion_of_commands_and_groups():
    res = run_cli("-sc", "query=bash", env={"COMP_LINE": "gmnas sp", "COMP_POINT": "8"})
    assert res.stdout.split() == ["split"]
    res = run_cli("-sc", "query=bash", env={"COMP_LINE": "gmnas split spa", "COMP_POINT": "15"})
    assert "space=" in res.stdout.split()
    res = run_cli("-sc", "query=bash", env={"COMP_LINE": "gmnas split space=", "COMP_POINT": "18"})
    assert "space=nb201" in res.stdout.split() and "space=nb201_4ops" in res.stdout.split()


@pytest.mark.parametrize("override", ["+foo=1", "+space.foo=1", "+train.lr_typo=0.1"])
def test_keys_added_with_plus_are_refused(tmp_path, override):
    res = run_cmd("warmup", "experiment=smoke", override, f"out_dir={tmp_path}")
    assert res.returncode == 2
    key = override[1:].split("=")[0]
    assert res.stderr.strip().splitlines()[-1].startswith(f"gmnas warmup: error: unknown config key '{key}'")
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
