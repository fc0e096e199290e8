"""Plots (headless ``matplotlib.figure.Figure``, Agg renderer): training curves and ablations (Fig. 2, 17)."""

from __future__ import annotations

import io
import re
from pathlib import Path

from matplotlib.figure import Figure

from gmnas_cli.infra.io import atomic_write_bytes
from gmnas_cli.report.collect import ExperimentRecord
from gmnas_cli.report.context import ReportContext
from gmnas_cli.report.groups import group, labelled, method_label
from gmnas_cli.report.stats import summary

PLOT_FORMATS = ("png", "pdf")


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` atomically."""
    paths = []
    for fmt in PLOT_FORMATS:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, bbox_inches="tight", dpi=150)
        path = stem.with_name(f"{stem.name}.{fmt}")
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plot_curves(rec: ExperimentRecord, out: Path) -> list[Path]:
    """Loss and accuracy per epoch of every searched leaf of one experiment."""
    if not rec.curves:
        return []
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    colors = [f"C{i % 10}" for i in range(len(rec.curves))]
    for color, (leaf, df) in zip(colors, sorted(rec.curves.items())):
        for col, ax, style in (("train_loss", ax_loss, "-"), ("val_loss", ax_loss, "--"),
                               ("train_acc", ax_acc, "-"), ("val_acc", ax_acc, "--")):
            if col in df.columns:
                ax.plot(df["epoch"], df[col], style, color=color, label=f"leaf {leaf} {col.split('_')[0]}")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss (solid: train, dashed: val)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy (solid: train, dashed: val)")
    ax_acc.legend(fontsize="x-small", ncol=2)
    fig.suptitle(f"{rec.name}: search curves per leaf")
    return save_figure(fig, out / f"curves_{_safe(rec.name)}")


def plot_ablation(records: list[ExperimentRecord], ctx: ReportContext, key: str, out: Path,
                  title: str) -> list[Path]:
    """Accuracy (mean ± std over seeds) against config ``key``, one line per remaining setting."""
    scored = [r for r in records if r.get(key) is not None and ctx.accuracy(r) is not None]
    lines = [g for g in group(scored, exclude=(key,)) if len({str(r.get(key)) for r in g.records}) > 1]
    if not lines:
        return []
    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.subplots()
    for g in lines:
        xs = sorted({r.get(key) for r in g.records}, key=lambda v: (str(type(v)), v))
        stats = [summary([ctx.accuracy(r) for r in g.records if r.get(key) == x]) for x in xs]
        ax.errorbar([str(x) for x in xs] if not all(isinstance(x, (int, float)) for x in xs) else xs,
                    [s["mean"] for s in stats], yerr=[s["std"] for s in stats], marker="o", capsize=3,
                    label=labelled(g, method_label(g.first)))
    ax.set(xlabel=key, ylabel=f"accuracy (%){' - ' + ctx.metric if ctx.metric else ''}", title=title)
    ax.legend(fontsize="small")
    return save_figure(fig, out / _safe(key))


def write_plots(records: list[ExperimentRecord], ctx: ReportContext, out: Path) -> list[Path]:
    """Curves of each experiment, and the warmup (Figure 2) / splits (Figure 17) ablations if varied."""
    written: list[Path] = []
    for rec in records:
        written += plot_curves(rec, out)
    for key, title in (("warmup_epochs", "Warmup epochs (paper Figure 2)"),
                       ("splits", "Number of splits (paper Figure 17)")):
        written += plot_ablation(records, ctx, key, out, title)
    return written
