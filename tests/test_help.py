"""`gmnas <cmd> --help`: every option of every config group on one line with its description, and
every config section's keys; no schema key that nothing reads."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

from gmnas_cli.cli.app import COMMANDS, conf_dir
from gmnas_cli.cli.help import GROUPS, command_help
from gmnas_cli.config.schema import Config
from tests.conftest import REPO, run_cli

# Keys another engineer's space/criterion reads (issue 16: kept; the spaces/criteria land separately).
PENDING = {"space.width_mult", "space.expand_ratios", "space.kernel_sizes", "space.stages", "criterion.batched_ops"}


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


def schema_keys(schema: type, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(schema)
    keys = []
    for f in dataclasses.fields(schema):
        sub = hints[f.name]
        keys += schema_keys(sub, f"{prefix}{f.name}.") if dataclasses.is_dataclass(sub) else [prefix + f.name]
    return keys


def test_no_config_key_that_does_nothing():
    source = "\n".join(p.read_text() for p in (REPO / "gmnas_cli").rglob("*.py")
                       if p.name not in ("schema.py", "cli/help.py"))
    unread = [k for k in schema_keys(Config) if k not in PENDING
              and not re.search(rf"\b{re.escape(k.rsplit('.', 1)[-1])}\b", source)]
    assert not unread, f"config keys that no code reads: {unread}"


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
