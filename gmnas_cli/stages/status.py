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


def overview(rows: list[dict[str, Any]], out_dir: str) -> Table:
    table = Table(title=f"experiments in {out_dir}", show_lines=True)
    for col in ("experiment", *STAGE_ORDER, "leaves", "selected architecture", "result", "time"):
        table.add_column(col, overflow="fold")
    for st in rows:
        table.add_row(st["name"], *[_stage_cell(st["stages"][s]) for s in STAGE_ORDER], str(st["leaves"] or "-"),
                      st["selected_arch"] or "-", _figure(st), _seconds(st["seconds"]))
    return table


def detail(st: dict[str, Any]) -> list[Table]:
    stages = Table(title=f"{st['name']} ({st['root']})")
    for col in ("stage", "state", "progress", "time"):
        stages.add_column(col, overflow="fold")
    for s in STAGE_ORDER:
        v = st["stages"][s]
        stages.add_row(s, _stage_cell({**v, "detail": ""}), v["detail"] or "", _seconds(v["seconds"]))
    leaves = Table(title=f"leaves ({st['leaves']}); result: {_figure(st)}")
    for col in ("leaf", "node", "architecture", "val_loss", "val_acc"):
        leaves.add_column(col, overflow="fold")
    for leaf in st["leaf_results"]:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        leaves.add_row(f"{leaf['index']}{' *' if leaf['selected'] else ''}", str(leaf["node"]),
                       leaf["arch"] or "-", fmt(leaf["val_loss"]), fmt(leaf["val_acc"]))
    return [stages, leaves]


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
        for table in detail(rows[0]):
            console.print(table)
    else:
        console.print(overview(rows, str(out_dir)))
