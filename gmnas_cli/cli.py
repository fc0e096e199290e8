"""The ``gmnas`` console script: one Hydra application per stage subcommand.

``gmnas <command> [overrides]`` composes ``conf/config.yaml`` (groups space, algo, dataset,
criterion, benchmark, experiment) into the typed schema of ``config/schema.py`` and runs the
command's ``main(cfg)``. Hydra's own flags work per command: ``--help``, ``--cfg job``,
``-m`` sweeps, ``-sc install=bash`` tab completion.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

COMMANDS: dict[str, tuple[str, str]] = {
    "warmup": ("gmnas_cli.stages.warmup", "train the root supernet's weights with alpha frozen"),
    "split": ("gmnas_cli.stages.split", "split the supernet into a partition tree of sub-supernets"),
    "search": ("gmnas_cli.stages.search", "run the base algorithm on every leaf and derive architectures"),
    "select": ("gmnas_cli.stages.select", "choose the final architecture among the leaves"),
    "retrain": ("gmnas_cli.stages.retrain", "train the chosen architecture from scratch (or look it up)"),
    "report": ("gmnas_cli.stages.report", "tables and plots over experiments and seeds"),
    "run": ("gmnas_cli.stages.run", "chain warmup, split, search, select, retrain and report"),
    "rank": ("gmnas_cli.stages.rank", "ranking correlation of sub-supernets against a benchmark"),
    "bench": ("gmnas_cli.stages.bench", "measure supernet throughput, GM scoring time and memory"),
}


def conf_dir() -> str:
    """``conf/`` of a source checkout, else the copy packed into the wheel."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "conf", here / "conf"):
        if (cand / "config.yaml").exists():
            return str(cand)
    raise RuntimeError(f"gmnas: cannot find conf/config.yaml near {here}")


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: gmnas <command> [key=value ...] [--help] [--cfg job] [-m]", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "`gmnas <command> --help` lists the config groups and keys of a command.",
              "Tab completion: eval \"$(gmnas -sc install=bash)\""]
    return "\n".join(lines)


def _complete_command() -> bool:
    """Bash completion: complete the command word, or hand the rest of the line to Hydra."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    if len(words) <= 1 or (len(words) == 2 and not line.endswith(" ")):
        prefix = words[1] if len(words) == 2 else ""
        print(" ".join(c for c in COMMANDS if c.startswith(prefix)))
        return True
    if words[1] not in COMMANDS:
        print("")
        return True
    os.environ["COMP_LINE"] = line.replace(words[1], "", 1)
    sys.argv.insert(1, words[1])
    return False


def main() -> None:
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    if argv[0] == "-sc":
        if any(a.startswith("query") for a in argv[1:]) and _complete_command():
            return
        if argv[0] == "-sc" and sys.argv[1] == "-sc":  # install/uninstall: any command will do
            sys.argv.insert(1, "warmup")
        argv = sys.argv[1:]
    command = argv[0]
    if command not in COMMANDS:
        print(f"gmnas: unknown command {command!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    run_command(command, argv[1:])


def run_command(command: str, args: list[str]) -> None:
    """Run one command as its own Hydra application (no change of working directory)."""
    import hydra
    from omegaconf import DictConfig

    from gmnas_cli.config import register_configs
    from gmnas_cli.errors import GmnasError

    register_configs()
    module = importlib.import_module(COMMANDS[command][0])
    sys.argv = ["gmnas", *args]

    def task(cfg: DictConfig) -> None:
        from gmnas_cli.config.validate import validate
        from gmnas_cli.logging import set_quiet

        try:
            set_quiet(bool(cfg.quiet))
            validate(cfg, command)
            module.main(cfg)
        except GmnasError as err:
            print(f"gmnas {command}: error: {err}", file=sys.stderr)
            sys.exit(err.exit_code)
        except OSError as err:  # disk full, permission denied: one line, nothing half-written
            print(f"gmnas {command}: error: {err.strerror or err} ({err.filename or ''})", file=sys.stderr)
            sys.exit(4)

    task.__module__ = module.__name__
    hydra.main(config_path=conf_dir(), config_name="config", version_base="1.3")(task)()


if __name__ == "__main__":
    main()
