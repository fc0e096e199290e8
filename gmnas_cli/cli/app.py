"""The ``gmnas`` console script: one Hydra application per stage subcommand.

``gmnas <command> [overrides]`` composes ``conf/config.yaml`` (groups space, algo, dataset,
criterion, benchmark, experiment) into the typed schema of ``config/schema.py`` and runs the
command's ``main(cfg)``. ``--help`` is ours (``cli/help.py``: groups' options, one line each); Hydra's
own flags work per command: ``--cfg job``, ``-m`` sweeps, ``-sc install=bash`` tab completion.
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
    "analyze": ("gmnas_cli.stages.analyze", "paper Table 2: weight sharing vs gradient similarity (RSPS pairs)"),
    "arch": ("gmnas_cli.stages.arch", "parameters, MACs and benchmark figures of one architecture string"),
    "status": ("gmnas_cli.stages.status", "where the experiments under out_dir stand (name=...: one in detail)"),
    "tree": ("gmnas_cli.stages.tree", "print an experiment's partition tree with groups, cut costs, leaf results"),
}

# Commands that only read experiment directories: answered without the plugin registries or torch
# (`gmnas status` is the command people run most; tests/test_status_fast.py keeps it so).
READ_ONLY = ("status", "tree")


def conf_dir() -> str:
    """``conf/`` of a source checkout, else the copy packed into the wheel."""
    package = Path(__file__).resolve().parents[1]  # gmnas_cli/
    for cand in (package.parent / "conf", package / "conf"):
        if (cand / "config.yaml").exists():
            return str(cand)
    raise RuntimeError(f"gmnas: cannot find conf/config.yaml near {package}")


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
    # Spinning OpenMP threads slow small CPU models many-fold when cores are shared.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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
    if "--help" in argv[1:] or "-h" in argv[1:]:
        from gmnas_cli.cli.help import command_help

        print(command_help(command, COMMANDS[command][1], conf_dir()))
        return
    run_command(command, argv[1:])


def run_command(command: str, args: list[str]) -> None:
    """Run one command as its own Hydra application (no change of working directory)."""
    import hydra
    from hydra.errors import HydraException
    from omegaconf import DictConfig
    from omegaconf.errors import OmegaConfBaseException

    from gmnas_cli.config import register_configs
    from gmnas_cli.infra.errors import GmnasError
    from gmnas_cli.infra.interrupt import Terminated, where
    from gmnas_cli.infra.interrupt import handled as signals_handled

    register_configs()
    module = importlib.import_module(COMMANDS[command][0])
    if command == "status" and "--json" in args:  # a familiar alias of status.format=json
        args = [a for a in args if a != "--json"] + ["status.format=json"]
    sys.argv = ["gmnas", *flags_first([quote_arch(a) for a in args])]

    started = False

    def task(cfg: DictConfig) -> None:
        from gmnas_cli.infra.logging import set_quiet

        nonlocal started
        started = True  # from here on, errors are ours (or bugs with a traceback)
        try:
            set_quiet(bool(cfg.quiet))
            if command in READ_ONLY:  # no registries, no torch: they only read experiment directories
                from gmnas_cli.config.bounds import check_declared
                from gmnas_cli.config.schema import Config

                check_declared(cfg, Config)
                module.main(cfg)
                return
            from gmnas_cli.pipeline.validate import validate

            validate(cfg, command)  # first: a bad value is refused before it is used or anything is written
            from gmnas_cli.infra.threads import apply_threads

            apply_threads(int(cfg.threads))  # 0: the CPUs this process may use (infra/threads.py)
            join_ranks(cfg, command)
            with signals_handled():
                module.main(cfg)
        except GmnasError as err:
            print(f"gmnas {command}: error: {err}", file=sys.stderr)
            sys.exit(err.exit_code)
        except (KeyboardInterrupt, Terminated) as err:  # every write is atomic: rerunning resumes
            print(f"gmnas {command}: interrupted during {where(command)}; rerun the same command to resume",
                  file=sys.stderr)
            sys.exit(143 if isinstance(err, Terminated) else 130)
        except OSError as err:  # disk full, permission denied: one line, nothing half-written
            print(f"gmnas {command}: error: {err.strerror or err} ({err.filename or ''})", file=sys.stderr)
            sys.exit(4)

    task.__module__ = module.__name__
    # Hydra reports a bad override (unknown key, wrong type, unknown option) in several lines; let it
    # raise instead and report it in one line, like our own errors (HYDRA_FULL_ERROR=1: traceback).
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra.main(config_path=conf_dir(), config_name="config", version_base="1.3")(task)()
    except (HydraException, OmegaConfBaseException) as err:
        if full_error or started:
            raise
        print(f"gmnas {command}: error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    finally:
        if not full_error:
            os.environ.pop("HYDRA_FULL_ERROR", None)


# Global batches a command cuts into shards (gmnas_cli/infra/distributed.py); select short-retrains.
_SHARDED = {"warmup": ["train"], "split": ["train"], "search": ["train"], "select": ["retrain"],
            "retrain": ["retrain"], "run": ["train", "retrain"]}


def join_ranks(cfg, command: str) -> None:
    """torchrun / submitit tasks: join the process group, fix ``batch_shards`` (part of the
    experiment's identity: 0 becomes the world size), and let only rank 0 log."""
    from gmnas_cli.config.derived import option
    from gmnas_cli.infra import distributed
    from gmnas_cli.infra.logging import log, set_quiet

    sections = _SHARDED.get(command, [])
    distributed.setup(option(cfg.device), int(cfg.batch_shards),
                      {f"{sec}.batch_size": int(cfg[sec].batch_size) for sec in sections})
    cfg.batch_shards = distributed.shards_total()
    if not distributed.is_main():
        set_quiet(True)
        log.setLevel("WARNING")


# Hydra's flags that take a value (argparse cannot interleave them with the positional overrides).
_VALUED = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
           "--config-dir", "-cd", "--experimental-rerun"}
_INFO_VALUES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def flags_first(args: list[str]) -> list[str]:
    """Move Hydra's flags before the overrides, so ``gmnas run a=1 -m seed=0,1`` works as typed."""
    flags: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            flags.append(arg)
            takes = arg in _VALUED or (arg in ("--info", "-i") and i + 1 < len(args) and args[i + 1] in _INFO_VALUES)
            if takes and i + 1 < len(args):
                flags.append(args[i + 1])
                i += 1
        else:
            overrides.append(arg)
        i += 1
    return flags + overrides


def quote_arch(arg: str) -> str:
    """``arch=<architecture string>`` as one quoted Hydra value: NB201 strings (``|``, ``~``, ``+``)
    and DARTS genotypes (``(``, ``[``, quotes) are not valid in Hydra's override grammar."""
    if not arg.startswith("arch=") or arg[5:6] in ("'", '"') and arg[-1:] == arg[5:6]:
        return arg
    return "arch='" + arg[5:].replace("\\", "\\\\").replace("'", "\\'") + "'"


def one_line(err: BaseException) -> str:
    """A Hydra/OmegaConf error and its cause in one line (key, value and valid options kept)."""
    text = str(err)
    override = getattr(err, "override", None)  # a syntax error in an override
    if isinstance(override, str) and override not in text:
        text = f"cannot parse override {override!r}: {text}"
    if err.__cause__ is not None and str(err.__cause__) not in text:
        text += "\n" + str(err.__cause__)
    out, listing = "", False
    for line in (raw.strip() for raw in text.splitlines()):
        if line.startswith("Config search path"):
            break
        if not line or line.startswith(("full_key:", "object_type=", "reference_type=", "To append to your config",
                                        "Set the environment")):
            continue
        if not out:
            out = line
        elif listing and " " not in line:  # an option of a list such as "Available options in 'space':"
            out += (" " if out.endswith(":") else ", ") + line
        else:
            out = out.rstrip(".") + ("" if out.endswith(":") else ";") + " " + line
        listing = line.endswith(":") or (listing and " " not in line)
    return out


if __name__ == "__main__":
    main()
