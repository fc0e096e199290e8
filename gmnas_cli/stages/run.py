"""``gmnas run``: chain warmup, split, search, select, retrain and report for one config, then a
summary: the selected leaf and architecture, the figure it reached, where the tables and plots
are, and the commands to look further."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gmnas_cli.experiment.directory import Experiment
from gmnas_cli.report.status import experiment_status
from gmnas_cli.stages import report, retrain, search, select, split, warmup


def main(cfg: DictConfig) -> None:
    for stage in (warmup, split, search, select, retrain):
        stage.main(cfg)
    # The report of a single run covers this experiment only.
    exp = Experiment(cfg)
    rcfg = OmegaConf.merge(cfg, {"report": {"experiments": [str(exp.root)], "out": str(exp.root / "report")}})
    report.main(rcfg)
    print("\n".join(summary(exp.root, str(cfg.out_dir))), flush=True)


def _figure(st: dict[str, Any]) -> str:
    if isinstance(st.get("test_error"), (int, float)):
        return f"test error {st['test_error']:.2f}% (retrained from scratch)"
    bench = {k: v for k, v in (st.get("benchmark") or {}).items() if isinstance(v, (int, float))}
    return ", ".join(f"{k} {v:.2f}" for k, v in bench.items()) + " (benchmark lookup)" if bench else "-"


def summary(root: Path, out_dir: str) -> list[str]:
    """The lines ``gmnas run`` ends with."""
    st = experiment_status(root)
    leaf = next((x for x in st["leaf_results"] if x["selected"]), None)
    lines = ["", f"gmnas run: {st['name']} complete ({root})"]
    if leaf is not None:
        loss = "" if leaf["val_loss"] is None else f", supernet val_loss {leaf['val_loss']:.4f}"
        lines.append(f"  selected     leaf {leaf['index']} of {st['leaves']} (node {leaf['node']}){loss}")
    lines.append(f"  architecture {st['selected_arch']}")
    lines.append(f"  result       {_figure(st)}")
    rep = root / "report"
    tables = sorted(p.name for p in rep.glob("*.md")) if rep.is_dir() else []
    if tables:
        lines.append(f"  tables       {rep}/ ({', '.join(tables)}, with .csv and .tex)")
    if (rep / "plots").is_dir():
        lines.append(f"  plots        {rep / 'plots'}/ (curves; split_{st['name']}/: heatmaps, cut costs, tree)")
    where = f"out_dir={out_dir} " if out_dir != "outputs" else ""
    lines += ["next:",
              f"  gmnas tree {where}name={st['name']}  # the partition tree; tree.plot=true: its figures",
              f"  gmnas report report.experiments=[{root}]  # tables and plots; several experiments: a glob",
              f"  gmnas status {where.strip()}".rstrip() + "  # where every experiment stands"]
    return lines
