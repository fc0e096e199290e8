"""Pictures of what the split decided (paper Appendix B.1), drawn from ``tree.json``.

* ``split_node<i>``: per split node, every scored edge's op-by-op gradient distance matrix
  (``1 - cos``, paper Eq. 3; the ``distance`` each edge's ``scores`` entry stores) as a labelled
  heatmap, ops ordered by that edge's best partition with the groups outlined; the chosen edge
  (lowest cut cost, paper Eq. 4) framed in red.
* ``cut_costs``: per split node, the cut cost of every scored edge, the chosen one in red.
* ``tree``: the partition tree, each split node with its edge and op groups, each leaf with its
  validation loss, and the leaves' architectures listed below.
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from gmnas_cli.report.plots import save_figure

CHOSEN = "tab:red"
_SHORT = [(r"^nor_conv_(\d)x\d$", r"conv\1x\1"), (r"^sep_conv_(\d)x\d$", r"sep\1x\1"),
          (r"^dil_conv_(\d)x\d$", r"dil\1x\1"), (r"^(max|avg)_pool_(\d)x\d$", r"\1pool\2"),
          (r"^skip_connect$", "skip"), (r"^(\d)x\d_MBConv(\d)$", r"k\1e\2")]


def short_op(op: str) -> str:
    """A tick label for an op: ``nor_conv_3x3`` -> ``conv3x3``, ``3x3_MBConv6`` -> ``k3e6``."""
    for pattern, repl in _SHORT:
        if re.match(pattern, op):
            return re.sub(pattern, repl, op)
    return op


def _legend(mask: dict[str, list[str]]) -> str:
    """A key to the MBConv abbreviations, where the ops have them."""
    ops = {o for v in mask.values() for o in v}
    return "; kKeE: KxK MBConv, expand ratio E" if any(re.match(_SHORT[-1][0], o) for o in ops) else ""


def _groups_text(groups: list[list[str]], sep: str = " | ") -> str:
    return sep.join("{" + ", ".join(short_op(o) for o in g) + "}" for g in groups)


def _splits(tree: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in tree.get("nodes", []) if n.get("split")]


def _scored(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The node's scored edges that carry a distance matrix (GM), in stored order."""
    scores = node["split"].get("scores") or {}
    return {e: s for e, s in scores.items() if isinstance(s, dict) and s.get("distance") and s.get("ops")}


def _heatmap(ax: Any, edge: str, s: dict[str, Any], chosen: bool, vmax: float) -> Any:
    ops = list(s["ops"])
    groups = [list(g) for g in s.get("groups") or [ops]]
    order = [o for g in groups for o in g if o in ops] + [o for o in ops if not any(o in g for g in groups)]
    idx = [ops.index(o) for o in order]
    mat = [[float(s["distance"][i][j]) for j in idx] for i in idx]
    im = ax.imshow(mat, cmap="viridis", vmin=0.0, vmax=vmax)
    labels = [short_op(o) for o in order]
    ax.set_xticks(range(len(order)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(order)), labels, fontsize=7)
    if len(order) <= 8:
        for i, row in enumerate(mat):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5.5,
                        color="white" if v < 0.6 * vmax else "black")
    start = 0
    for g in groups:  # each group of the edge's best partition as a block on the diagonal
        n = len([o for o in g if o in ops])
        ax.add_patch(Rectangle((start - 0.5, start - 0.5), n, n, fill=False, edgecolor="white", lw=2.5))
        ax.add_patch(Rectangle((start - 0.5, start - 0.5), n, n, fill=False, edgecolor="black", lw=1.0))
        start += n
    cost = s.get("cut_cost")
    title = f"{edge}" + (f"\ncut cost {float(cost):.3f}" if cost is not None else "")
    ax.set_title(("chosen: " if chosen else "") + title, fontsize=8, color=CHOSEN if chosen else "black",
                 fontweight="bold" if chosen else "normal")
    if chosen:
        for spine in ax.spines.values():
            spine.set(edgecolor=CHOSEN, linewidth=3)
    return im


def plot_split_heatmaps(name: str, node: dict[str, Any], out: Path) -> list[Path]:
    """One figure per split node: a heatmap per scored edge (``split_node<i>.png/.pdf``)."""
    fig = split_figure(name, node)
    return save_figure(fig, out / f"split_node{node['id']}") if fig is not None else []


def split_figure(name: str, node: dict[str, Any]) -> Figure | None:
    """The heatmaps of one split node's scored edges (None: no edge carries a distance matrix)."""
    scored = _scored(node)
    if not scored:
        return None
    cols = min(4, len(scored))
    rows = math.ceil(len(scored) / cols)
    fig = Figure(figsize=(2.9 * cols + 0.8, 2.9 * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    vmax = max(max(max(r) for r in s["distance"]) for s in scored.values()) or 1.0
    im = None
    for ax, (edge, s) in zip(axes.flat, scored.items()):
        im = _heatmap(ax, edge, s, edge == node["split"]["edge"], vmax)
    for ax in list(axes.flat)[len(scored):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.6, label="gradient distance 1 - cos (low: similar)")
    split = node["split"]
    fig.suptitle(f"{name}: node {node['id']} (depth {node['depth']}), split on {split['edge']} into "
                 f"{_groups_text(split['groups'])}\nboxes: each edge's best partition of its ops; "
                 f"the chosen edge has the lowest cut cost{_legend(node['mask'])}", fontsize=9)
    return fig


def plot_cut_costs(name: str, tree: dict[str, Any], out: Path) -> list[Path]:
    """Every split node's scored edges by cut cost (``cut_costs.png/.pdf``), chosen edge in red."""
    nodes = [n for n in _splits(tree) if any("cut_cost" in s for s in (n["split"].get("scores") or {}).values()
                                             if isinstance(s, dict))]
    if not nodes:
        return []
    cols = min(2, len(nodes))
    rows = math.ceil(len(nodes) / cols)
    n_edges = max(len(n["split"]["scores"]) for n in nodes)
    fig = Figure(figsize=(6.0 * cols, (0.22 * n_edges + 1.0) * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, node in zip(axes.flat, nodes):
        items = [(e, float(s["cut_cost"])) for e, s in node["split"]["scores"].items()
                 if isinstance(s, dict) and "cut_cost" in s]
        chosen = node["split"]["edge"]
        edges = [e for e, _ in items][::-1]
        costs = [c for _, c in items][::-1]
        ax.barh(edges, costs, color=[CHOSEN if e == chosen else "tab:blue" for e in edges])
        for y, (e, c) in enumerate(zip(edges, costs)):
            ax.text(c, y, f" {c:.3f}" + ("  chosen" if e == chosen else ""), va="center", fontsize=7,
                    color=CHOSEN if e == chosen else "black", fontweight="bold" if e == chosen else "normal")
        ax.set_xlim(0, max(costs) * 1.3 if max(costs) > 0 else 1.0)
        ax.tick_params(axis="y", labelsize=7)
        ax.set(xlabel="cut cost (paper Eq. 4; lower: the split separates dissimilar ops)",
               title=f"node {node['id']} (depth {node['depth']}): split on {chosen}")
        ax.title.set_fontsize(9)
        ax.xaxis.label.set_fontsize(8)
    for ax in list(axes.flat)[len(nodes):]:
        ax.axis("off")
    fig.suptitle(f"{name}: cut cost of every scored edge per split", fontsize=10)
    return save_figure(fig, out / "cut_costs")


def _layout(tree: dict[str, Any]) -> dict[int, tuple[float, int]]:
    """(x, depth) per node: leaves left to right in tree order, a parent over its children."""
    nodes = {int(n["id"]): n for n in tree["nodes"]}
    pos: dict[int, tuple[float, int]] = {}
    next_x = [0.0]

    def place(i: int) -> float:
        kids = (nodes[i].get("split") or {}).get("children", [])
        if not kids:
            x = next_x[0]
            next_x[0] += 1.0
        else:
            xs = [place(int(c)) for c in kids]
            x = sum(xs) / len(xs)
        pos[i] = (x, int(nodes[i]["depth"]))
        return x

    place(0)
    return pos


def plot_tree(name: str, tree: dict[str, Any], results: dict[int, dict[str, Any]], selected: int | None,
              out: Path) -> list[Path]:
    """The partition tree as a figure (``tree.png/.pdf``); leaf architectures listed below it."""
    nodes = {int(n["id"]): n for n in tree.get("nodes", [])}
    if not nodes:
        return []
    pos = _layout(tree)
    leaves = [i for i in sorted(pos, key=lambda i: pos[i][0]) if not nodes[i].get("split")]
    depth = max(d for _, d in pos.values())
    archs = [f"leaf {k} (node {i}){' *' if i == selected else ''}: {results[i].get('arch')}"
             for k, i in enumerate(leaves) if results.get(i, {}).get("arch") is not None]
    wrap = 130
    lines = [ln for a in archs for ln in textwrap.wrap(a, wrap, subsequent_indent="    ")]
    width = max(7.0, 1.7 * len(leaves) + 1.0)
    tree_h = 1.5 * (depth + 1) + 0.4
    text_h = 0.12 * len(lines) + 0.2 if lines else 0.0
    fig = Figure(figsize=(width, tree_h + text_h + 0.5), layout="constrained")
    if lines:
        ax, ax_text = fig.subplots(2, 1, height_ratios=[tree_h, text_h])
    else:
        ax, ax_text = fig.subplots(), None
    for i, n in nodes.items():  # parent-child lines, labelled with the child's ops on the split edge
        split = n.get("split")
        if not split:
            continue
        x0, d0 = pos[i]
        for c, group in zip(split["children"], split["groups"]):
            x1, d1 = pos[int(c)]
            ax.plot([x0, x1], [-d0, -d1], color="0.6", lw=1.0, zorder=1)
            ops = [short_op(o) for o in group]
            label = "{" + ",\n".join(", ".join(ops[k:k + 2]) for k in range(0, len(ops), 2)) + "}"
            ax.text(x0 + 0.62 * (x1 - x0), -(d0 + 0.62 * (d1 - d0)), label,
                    fontsize=6.5, ha="center", va="center", color="0.25",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"}, zorder=2)
    for k, i in enumerate(leaves):
        res = results.get(i, {})
        loss = res.get("val_loss")
        text = f"leaf {k} (node {i})" + (f"\nval_loss {float(loss):.3f}" if isinstance(loss, (int, float)) else "")
        if i == selected:
            text += "\nselected"
        x, d = pos[i]
        ax.text(x, -d, text, ha="center", va="center", fontsize=7.5, zorder=3,
                bbox={"boxstyle": "round,pad=0.35", "fc": "#fde0dd" if i == selected else "#e5f5e0",
                      "ec": CHOSEN if i == selected else "tab:green", "lw": 1.5 if i == selected else 0.8})
    for i, n in nodes.items():
        split = n.get("split")
        if not split:
            continue
        cost = ((split.get("scores") or {}).get(split["edge"]) or {}).get("cut_cost")
        text = f"node {i}: split {split['edge']}" + (f"\ncut cost {float(cost):.3f}" if cost is not None else "")
        x, d = pos[i]
        ax.text(x, -d, text, ha="center", va="center", fontsize=7.5, zorder=3,
                bbox={"boxstyle": "round,pad=0.35", "fc": "#deebf7", "ec": "tab:blue", "lw": 0.8})
    ax.set_xlim(-0.7, max(len(leaves) - 0.3, 0.7))
    ax.set_ylim(-depth - 0.35, 0.35)
    ax.axis("off")
    ax.set_title(f"{name}: partition tree (edge labels: the child's ops on the split edge"
                 f"{_legend(nodes[0]['mask'])})", fontsize=10)
    if ax_text is not None:
        ax_text.axis("off")
        ax_text.text(0.0, 1.0, "\n".join(lines), family="monospace", fontsize=6.5, va="top", ha="left",
                     transform=ax_text.transAxes)
    return save_figure(fig, out / "tree")


def write_split_plots(name: str, tree: dict[str, Any] | None, results: dict[int, dict[str, Any]],
                      selected: int | None, out: Path) -> list[Path]:
    """Heatmaps per split node, cut costs and the tree figure of one experiment, into ``out``."""
    if not tree or not tree.get("nodes"):
        return []
    written: list[Path] = []
    for node in _splits(tree):
        written += plot_split_heatmaps(name, node, out)
    written += plot_cut_costs(name, tree, out)
    written += plot_tree(name, tree, results, selected, out)
    return written
