"""``gmnas <command> --help``: the command, each config group's options with one line each (the
first comment line of the option's YAML file, so a new option documents itself), and the keys of
every config section (schema dataclasses). ``--cfg job`` prints the composed values."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

GROUPS = ("space", "algo", "criterion", "dataset", "benchmark", "retrain", "experiment")


def describe(path: Path) -> str:
    """The first comment line of a YAML option (without ``# @package`` lines)."""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("#") and not line.startswith("# @package"):
            return line.lstrip("#").strip().rstrip(":")
        if line and not line.startswith("#"):
            break
    return ""


def group_lines(conf: Path) -> list[str]:
    lines = ["config groups (group=option; default in the schema's defaults list, conf/config.yaml):"]
    for group in GROUPS:
        options = sorted((conf / group).glob("*.yaml"))
        if not options:
            continue
        lines.append(f"  {group}=")
        width = max(len(p.stem) for p in options)
        lines += [f"    {p.stem:<{width}}  {describe(p)}" for p in options]
    return lines


def key_lines() -> list[str]:
    from gmnas_cli.config.schema import Config

    hints = typing.get_type_hints(Config)
    top, sections = [], []
    for f in dataclasses.fields(Config):
        sub = hints[f.name]
        if dataclasses.is_dataclass(sub):
            names = [g.name for g in dataclasses.fields(sub)]
            sections.append(f"  {f.name}.{{{', '.join(names)}}}")
        else:
            top.append(f.name)
    return ["keys (key=value; `--cfg job` prints their values, docs/configuration.md explains them):",
            f"  {', '.join(top)}", *sections]


def command_help(command: str, description: str, conf: str) -> str:
    lines = [f"gmnas {command}: {description}", "",
             f"usage: gmnas {command} [group=option ...] [key=value ...] [-m] [--cfg job]", ""]
    lines += group_lines(Path(conf)) + [""] + key_lines()
    lines += ["", "Hydra: -m sweeps (e.g. -m seed=0,1,2), --cfg job prints the config, --hydra-help Hydra's flags."]
    return "\n".join(lines)
