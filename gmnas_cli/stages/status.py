"""``gmnas status``: one table of the experiments under ``out_dir``, or one experiment in detail
with ``name=...``; ``status.format=json`` (or ``--json``) prints the same as JSON on stdout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from gmnas_cli.experiment.directory import STAGE_ORDER
from gmnas_cli.infra.errors import StageError
from gmnas_cli.infra.io import strict_json
from gmnas_cli.report.collect import find_experiments
from gmnas_cli.report.listing import arch_keys, print_listing
from gmnas_cli.report.status import damaged_status, experiment_status


def _stage_cell(state: dict[str, Any]) -> str:
    text = {"done": "done", "running": "[yellow]running[/yellow]", "interrupted": "[red]interrupted[/red]",
            "not started": "-", "damaged": "[red]damaged[/red]"}[state["state"]]
    return f"{text}: {state['detail']}" if state["detail"] else text


def _seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.1f}m" if s < 7200 else f"{s / 3600:.1f}h"


def _figure(st: dict[str, Any]) -> str:
    if st.get("damaged"):
        return f"[red]damaged[/red]: {st['damaged']}"
    if isinstance(st.get("test_error"), (int, float)):
        return f"test error {st['test_error']:.2f}%"
    bench = st.get("benchmark") or {}
    return ", ".join(f"{k} {v:.2f}" for k, v in bench.items() if isinstance(v, (int, float))) or "-"


def _progress(st: dict[str, Any]) -> str:
    """How many stages are done, and the one that is running or interrupted."""
    states = st["stages"]
    done = sum(1 for s in STAGE_ORDER if states[s]["state"] == "done")
    text = f"{done}/{len(STAGE_ORDER)} done"
    for s in STAGE_ORDER:
        if states[s]["state"] in ("running", "interrupted"):
            text += f", {s} " + _stage_cell({**states[s], "detail": ""})
    return text


def overview(rows: list[dict[str, Any]], out_dir: str) -> tuple[Table, list[tuple[str, str]]]:
    """One row per experiment (stages done, the one in progress, leaves, result, time); the
    progress details and the selected architectures are listed below the table."""
    table = Table(title=f"experiments in {out_dir}", show_lines=False)
    table.add_column("experiment", no_wrap=True)  # names stay whole; the other cells fold
    for col in ("stages", "leaves", "arch", "result", "time"):
        table.add_column(col, overflow="fold")
    keys, archs = arch_keys([st["selected_arch"] for st in rows])
    below = []
    for st, key in zip(rows, keys):
        table.add_row(st["name"], _progress(st), str(st["leaves"] or "-"), key, _figure(st), _seconds(st["seconds"]))
        below += [(f"{st['name']} {s}", st["stages"][s]["detail"]) for s in STAGE_ORDER if st["stages"][s]["detail"]]
    return table, below + archs


def detail(st: dict[str, Any]) -> tuple[list[Table], list[tuple[str, str]]]:
    stages = Table(title=f"{st['name']} ({st['root']})")
    for col in ("stage", "state", "progress", "time"):
        stages.add_column(col, overflow="fold")
    for s in STAGE_ORDER:
        v = st["stages"][s]
        stages.add_row(s, _stage_cell({**v, "detail": ""}), v["detail"] or "", _seconds(v["seconds"]))
    leaves = Table(title=f"leaves ({st['leaves']}); result: {_figure(st)}")
    for col in ("leaf", "node", "val_loss", "val_acc"):
        leaves.add_column(col, overflow="fold")
    below = []
    for leaf in st["leaf_results"]:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        name = f"{leaf['index']}{' *' if leaf['selected'] else ''}"
        leaves.add_row(name, str(leaf["node"]), fmt(leaf["val_loss"]), fmt(leaf["val_acc"]))
        if leaf["arch"]:
            below.append((f"leaf {name}", leaf["arch"]))
    return [stages, leaves], below


def main(cfg: DictConfig) -> None:
    out_dir = Path(str(cfg.out_dir))
    if cfg.name:
        root = out_dir / str(cfg.name)
        if not (root / "config").is_dir():
            raise StageError(f"status: {root} is not an experiment directory (no config/ snapshots)")
        roots = [root]
    else:
        roots = find_experiments([str(out_dir / "*")])
    rows = []
    for r in roots:
        try:
            rows.append(experiment_status(r))
        except StageError as err:  # one damaged experiment: marked, the others still listed
            if cfg.name:
                raise
            rows.append(damaged_status(r, str(err)))
    if str(cfg.status.format) == "json":
        print(strict_json(rows[0] if cfg.name else rows, "status", indent=2))
        return
    console = Console()
    if not rows:
        console.print(f"no experiments in {out_dir}")
    elif cfg.name:
        tables, below = detail(rows[0])
        for table in tables:
            console.print(table)
        print_listing(console, below, "architectures (* selected)")
    else:
        table, below = overview(rows, str(out_dir))
        console.print(table)
        print_listing(console, below, "progress and selected architectures")
