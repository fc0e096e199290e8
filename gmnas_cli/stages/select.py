"""``gmnas select``: choose among the leaves (paper Appendix C).

``val_loss`` / ``val_acc``: the leaf whose supernet is best on the held-out architecture half
(Few-Shot NAS's rule); ``max``: the best derived architecture by a benchmark (the paper's oracle on
NAS-Bench-201; the searched data set's figure); ``successive_halving``: epoch windows of the
candidates' real retrain runs (official protocol) or short retrains, ranked on the held-out split. We differ
from the public code here on purpose: nothing is ever ranked on the test split.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig
from rich.markup import escape
from rich.table import Table

from gmnas_cli.benchmarks import benchmark_enabled, load_benchmark
from gmnas_cli.benchmarks.metrics import dataset_metric
from gmnas_cli.config.derived import option
from gmnas_cli.experiment.state import read_result, read_selection
from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.infra.io import write_json
from gmnas_cli.infra.logging import console
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.pipeline.stage import run_stage
from gmnas_cli.report.groups import DATASET_NAMES
from gmnas_cli.report.listing import print_listing
from gmnas_cli.selection.halving import successive_halving


def candidates(rt: Runtime) -> list[dict[str, Any]]:
    tree = PartitionTree.load(rt.exp.tree_path)
    leaves = [n.id for n in tree.leaves()]
    return [read_result(rt.exp.search_dir(leaf) / "result.json", leaves, rt.space.str_to_arch) for leaf in leaves]


def lookup_all(rt: Runtime, cands: list[dict[str, Any]]) -> tuple[dict[int, dict[str, float]] | None, list[str]]:
    """Benchmark figures per leaf (``None`` without a benchmark) and the benchmark's metric names."""

    bench = load_benchmark(rt.cfg.benchmark)
    if bench is None:
        return None, []
    return {c["leaf"]: bench.query(c["arch"]) for c in cands}, bench.metrics


def select(rt: Runtime) -> dict:
    cfg = rt.cfg
    crit = option(cfg.select.criterion)
    cands = candidates(rt)
    looked_up, metrics = lookup_all(rt, cands) if benchmark_enabled(cfg.benchmark) else (None, [])
    evidence: dict[str, Any] = {}
    # Ties break towards the lower leaf id: the order of `cands`, and min/max keep the first.
    if crit == "val_loss":
        best = min(cands, key=lambda c: c["val_loss"])
    elif crit == "val_acc":
        best = max(cands, key=lambda c: c["val_acc"])
    elif crit == "max":
        if looked_up is None:
            raise ConfigError("select.criterion=max needs a benchmark (benchmark=nb201 benchmark.path=...)")

        # The searched data set's figure: cifar10_test on a CIFAR-100 run -> cifar100_test.
        metric = dataset_metric(str(cfg.benchmark.metric or ""), str(cfg.dataset.name), metrics)
        scored = [c for c in cands if looked_up[c["leaf"]].get(metric) is not None]  # "no figure": never chosen
        if not scored:
            raise StageError(f"select: the benchmark has no {metric!r} figure for any leaf's architecture "
                             f"({', '.join(str(c['arch']) for c in cands)}); use select.criterion=val_loss")
        best = max(scored, key=lambda c: looked_up[c["leaf"]][metric])
        evidence["metric"] = metric
    else:
        best, evidence = successive_halving(rt, cands)
    for c in cands:
        c.pop("alpha", None)
        c["benchmark"] = looked_up[c["leaf"]] if looked_up else None
    selection = {"criterion": crit, "dataset": str(cfg.dataset.name), "leaf": best["leaf"], "arch": best["arch"],
                 "candidates": cands,
                 "benchmark": looked_up[best["leaf"]] if looked_up else None, "evidence": evidence}
    write_json(rt.exp.selection_path, selection)
    show(selection)
    return {"leaf": best["leaf"]}


def show(selection: dict[str, Any]) -> None:
    metric = (selection.get("evidence") or {}).get("metric")

    ds = str(selection.get("dataset", "?"))
    basis = metric or ("held-out accuracy of retrain runs" if selection["criterion"] == "successive_halving"
                       else f"supernet {selection['criterion']} on the held-out half")
    table = Table(title=escape(f"selection by {selection['criterion']}. Data set: {DATASET_NAMES.get(ds, ds)}; "
                               f"metric: {basis}"))
    for col in ("leaf", "val_loss", "val_acc", "benchmark"):
        table.add_column(col, overflow="fold")
    below = []
    for c in selection["candidates"]:
        mark = "*" if c["leaf"] == selection["leaf"] else ""
        bench = ", ".join(f"{k} {'no figure' if v is None else f'{v:.2f}'}" for k, v in (c.get("benchmark") or {}).items())
        table.add_row(f"{c['leaf']}{mark}", f"{c['val_loss']:.4f}", f"{c['val_acc']:.4f}", bench or "-")
        below.append((f"leaf {c['leaf']}{mark}", str(c["arch"])))
    console.print(table)
    print_listing(console, below, "architectures (* selected)")  # under the table: readable at 80 columns


def main(cfg: DictConfig) -> None:
    rt = run_stage(cfg, "select", select, requires=["search"])
    if rt.exp.selection_path.exists():
        sel = read_selection(rt.exp.selection_path)
        print(f"selected leaf {sel['leaf']}: {sel['arch']}")
