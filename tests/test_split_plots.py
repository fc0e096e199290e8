"""Pictures of the split (paper Appendix B.1): heatmaps per scored edge with the partition outlined,
cut costs per split, the tree figure; written by ``gmnas tree tree.plot=true`` and ``gmnas report``."""

from __future__ import annotations

import json

from matplotlib.patches import Rectangle

from gmnas_cli.report.split_plots import short_op, split_figure
from tests._reliability import copy_experiment, run_inproc


def test_heatmap_per_scored_edge_with_the_partition_outlined():
    ops = ["none", "skip_connect", "nor_conv_3x3"]
    dist = [[0.0, 0.2, 0.9], [0.2, 0.0, 0.8], [0.9, 0.8, 0.0]]
    scores = {e: {"ops": ops, "distance": dist, "cut_cost": c, "groups": [["nor_conv_3x3"], ["none", "skip_connect"]]}
              for e, c in (("1<-0", 0.3), ("2<-0", 0.7))}
    node = {"id": 0, "depth": 0, "mask": {"1<-0": ops, "2<-0": ops},
            "split": {"edge": "1<-0", "groups": [["nor_conv_3x3"], ["none", "skip_connect"]], "children": [1, 2],
                      "scores": scores}}
    fig = split_figure("e", node)
    maps = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in maps] == ["chosen: 1<-0\ncut cost 0.300", "2<-0\ncut cost 0.700"]
    # ops ordered by groups, each group one outlined block on the diagonal (white halo + black line)
    assert [t.get_text() for t in maps[0].get_xticklabels()] == ["conv3x3", "none", "skip"]
    blocks = sorted({(r.get_x(), r.get_width()) for r in maps[0].patches if isinstance(r, Rectangle)})
    assert blocks == [(-0.5, 1), (0.5, 2)]
    assert maps[0].images[0].get_array()[1][2] == 0.2  # none-skip after the reordering
    assert short_op("sep_conv_5x5") == "sep5x5" and short_op("3x3_MBConv6") == "k3e6"


def test_tree_plot_and_report_write_the_figures(tmp_path, small_ref):
    exp = copy_experiment(small_ref, tmp_path)
    code, err = run_inproc("tree", f"out_dir={tmp_path}", "name=e", "tree.plot=true")
    assert code == 0, err
    splits = [n["id"] for n in json.loads((exp / "tree.json").read_text())["nodes"] if "split" in n]
    stems = [f"split_node{i}" for i in splits] + ["cut_costs", "tree"]
    assert sorted(p.name for p in (exp / "plots").iterdir()) == sorted(f"{s}.{x}" for s in stems for x in ("pdf", "png"))
    assert all((exp / "plots" / f"{s}.png").stat().st_size > 10_000 for s in stems)
    code, err = run_inproc("report", f"out_dir={tmp_path}", f"report.experiments=[{exp}]",
                           f"report.out={tmp_path / 'rep'}")
    assert code == 0, err
    assert {f"{s}.png" for s in stems} <= {p.name for p in (tmp_path / "rep" / "plots" / "split_e").iterdir()}


def test_run_summary_names_the_selection_its_figure_and_the_next_commands(tmp_path, small_ref):
    from gmnas_cli.stages.run import summary

    exp = copy_experiment(small_ref, tmp_path)
    sel = json.loads((exp / "selection.json").read_text())
    text = "\n".join(summary(exp, str(tmp_path)))
    assert f"(node {sel['leaf']})" in text and sel["arch"] in text
    assert f"gmnas tree out_dir={tmp_path} name=e" in text and "gmnas report report.experiments=" in text
