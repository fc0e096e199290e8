"""`gmnas <cmd> --help`: every option of every config group on one line with its description, and
every config section's keys (that every key is read by some code: tests/test_plugin_keys.py)."""

from __future__ import annotations

import re
from pathlib import Path

from gmnas_cli.cli.app import COMMANDS, conf_dir
from gmnas_cli.cli.help import GROUPS, command_help
from tests.conftest import run_cli


def test_help_lists_each_option_with_one_line():
    text = command_help("split", COMMANDS["split"][1], conf_dir())
    for group in GROUPS:
        for option in sorted((Path(conf_dir()) / group).glob("*.yaml")):
            line = next((ln for ln in text.splitlines() if ln.strip().startswith(option.stem + " ")), None)
            assert line is not None, f"{group}={option.stem} missing from --help"
            assert len(line.split(None, 1)) == 2, f"{group}={option.stem} has no description"
    for section in ("train", "algo", "criterion", "retrain"):
        assert re.search(rf"^  {section}\.\{{", text, re.M)


def test_help_through_the_console_script():
    res = run_cli("search", "--help")
    assert res.returncode == 0 and res.stdout.startswith("gmnas search: ") and "  space=" in res.stdout


def test_configuration_reference_lists_every_key_as_generated():
    """docs/configuration.md's generated section equals what scripts/config_reference.py writes now,
    so a new or changed key cannot be left out of the reference."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "config_reference.py"
    spec = importlib.util.spec_from_file_location("config_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.section() in mod.DOC.read_text(), "regenerate: python scripts/config_reference.py"
