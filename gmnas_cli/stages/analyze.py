"""``gmnas analyze``: paper Table 2 (section 3.2, Appendix B.2) on the configured space and data set.

Trains, for ``analyze.archs`` targets, each target together with every one-edge partner (RSPS),
and prints the target's train/valid loss next to a similar (B) and a dissimilar (C) partner's
gradient similarity, mean over targets. See ``gmnas_cli/analysis/weight_sharing.py`` for the procedure.
"""

from __future__ import annotations

from omegaconf import DictConfig
from rich.markup import escape
from rich.table import Table

from gmnas_cli.analysis.weight_sharing import analyze, analyze_dir
from gmnas_cli.infra.logging import console, log
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.report.groups import DATASET_NAMES
from gmnas_cli.report.stats import pm

_CASES = {"similar": "A with B (similar gradients)", "dissimilar": "A with C (dissimilar gradients)"}


def show(result: dict) -> None:
    ds = DATASET_NAMES.get(result["dataset"], result["dataset"])
    dropped = int(result.get("degenerate", 0))
    left_out = f" ({dropped} with indistinguishable partners left out)" if dropped else ""
    title = (f"Weight sharing vs gradient similarity (paper Table 2), mean over {result['archs']} targets{left_out}. "
             f"Data set: {ds}; metric: cross-entropy of A (train: weights half, valid: held-out half) and "
             f"cosine similarity of A's and its partner's gradients at the shared weights")
    table = Table(title=escape(title))
    for col in ("Weight Sharing", "Grad Similarity", "Train Loss (A)", "Valid Loss (A)", "Targets"):
        table.add_column(col, justify="left" if col == "Weight Sharing" else "right", overflow="fold")
    for case, label in _CASES.items():
        rows = [t[case] for t in result["targets"] if not t.get("degenerate")]
        table.add_row(label, pm([r["similarity"] for r in rows], 3), pm([r["train_loss"] for r in rows], 3),
                      pm([r["valid_loss"] for r in rows], 3), str(len(rows)))
    console.print(table)
    for case in _CASES:
        m = result["mean"][case]
        print(f"{case}: similarity={m['similarity']:.4f} train_loss={m['train_loss']:.4f} "
              f"valid_loss={m['valid_loss']:.4f}")


def main(cfg: DictConfig) -> None:
    rt = Runtime(cfg)
    _ = rt.device, rt.data  # a missing data set fails before anything is written
    result = analyze(rt)
    show(result)
    log.info(f"analyze: wrote {analyze_dir(cfg) / 'analyze.json'}")
