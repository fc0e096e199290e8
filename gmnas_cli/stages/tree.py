"""``gmnas tree name=...``: the partition tree with split edges, op groups, cut costs, and each
leaf's search result (derived architecture, supernet validation loss/accuracy); ``tree.plot=true``
also writes its figures (``report/split_plots.py``) to ``<out_dir>/<name>/plots``."""

from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console

from gmnas_cli.experiment.directory import Experiment
from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.infra.errors import StageError
from gmnas_cli.infra.io import read_json
from gmnas_cli.infra.logging import log


def main(cfg: DictConfig) -> None:
    exp = Experiment(cfg)
    if not exp.tree_path.exists():
        raise StageError(f"tree: {exp.tree_path} is missing; run `gmnas split` (name=... picks the experiment)")
    tree = PartitionTree.load(exp.tree_path)
    results = {}
    for leaf in tree.leaves():
        path = exp.search_dir(leaf.id) / "result.json"
        if path.exists():
            results[leaf.id] = read_json(path)
    selected = read_json(exp.selection_path).get("leaf") if exp.selection_path.exists() else None
    Console().print(tree.render(results=results, selected=selected))
    if bool(cfg.tree.plot):
        # matplotlib only when asked: the plain tree stays a sub-second command
        from gmnas_cli.report.split_plots import write_split_plots

        written = write_split_plots(exp.name, tree.to_json(), results, selected, exp.root / "plots")
        log.info(f"tree: {len(written)} figures in {exp.root / 'plots'}")
