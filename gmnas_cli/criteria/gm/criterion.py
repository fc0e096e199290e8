"""criterion=gm: the split decision of gradient matching (paper 3.3-3.4): score every candidate
edge (``scoring.py``: per-minibatch distances of per-op shared gradients, ``fast.py``), cut its ops
into balanced groups, and split the edge with the lowest cut cost; resumable edge by edge."""

from __future__ import annotations

from typing import Any

from gmnas_cli.config.derived import option
from gmnas_cli.criteria.base import CRITERIA, Criterion, SplitContext, SplitDecision
from gmnas_cli.criteria.gm.scoring import gm_distance, rank_key, score_from_distance
from gmnas_cli.criteria.gm.stop import gm_scores_early_stop
from gmnas_cli.criteria.gm.workers import resolve_workers, scored_edges
from gmnas_cli.experiment.state import read_progress
from gmnas_cli.infra import distributed
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.interrupt import loop
from gmnas_cli.infra.io import write_json
from gmnas_cli.infra.logging import log


@CRITERIA.register("gm", keys=("batches", "similarity", "cut", "average", "scored_weight", "augment", "early_stop",
                               "confidence", "early_stop_min_batches", "workers", "batched_ops"))
class GradientMatching(Criterion):
    name = "gm"
    scores_edges = True
    label = "Gradient (GM)"
    method_prefix = "GM"

    @classmethod
    def check_config(cls, cfg: Any, branching: list[int], n_ops: int) -> None:
        """Settings that contradict each other (early stop, workers, the ``within`` cut), found at start-up."""
        cls(cfg.criterion)  # refuses early_stop with average=gradient or cut=ncut
        workers = int(cfg.criterion.workers)
        if workers > 1 and cfg.criterion.early_stop:
            raise ConfigError(f"criterion.workers={workers} has no effect with criterion.early_stop=true (its test "
                              f"scores all edges together); use criterion.workers=1 or 0")
        if workers > 1 and option(cfg.device) == "cuda":
            raise ConfigError(f"criterion.workers={workers}: parallel scoring processes are CPU only; "
                              f"use criterion.workers=1 with device=cuda")
        if option(cfg.criterion.cut) == "within":  # official DARTS-space rule: groups of >= 2 ops
            for b in branching:
                if 2 * b > n_ops:
                    raise ConfigError(f"criterion.cut=within needs groups of >= 2 ops: branching={b} exceeds "
                                      f"{n_ops // 2} for {n_ops} ops")

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        if cfg.early_stop:
            if option(cfg.average) != "distance":
                raise ConfigError("criterion.early_stop=true needs criterion.average=distance (its test uses "
                                  "per-minibatch distances)")
            if option(cfg.cut) == "ncut":
                raise ConfigError("criterion.early_stop=true needs a linear cut: criterion.cut=balanced or within")

    def score_edge(self, ctx: SplitContext, edge: str) -> dict[str, Any]:
        ops = ctx.ops_of(edge)
        batches = int(self.cfg.batches)
        score = score_from_distance(gm_distance(ctx, edge, ops, batches, self.cfg), ops, self.cfg, ctx.branching)
        return {**score, "batches": batches}

    def decide(self, ctx: SplitContext) -> SplitDecision:
        fixed = self.fixed_edge(ctx)
        edges = [fixed] if fixed is not None else ctx.candidate_edges()
        scores: dict[str, Any] = {}
        if ctx.progress_path is not None and ctx.progress_path.exists():
            scores = read_progress(ctx.progress_path, edges)  # edges scored before an interruption
        todo = [e for e in edges if e not in scores]
        if todo and self.cfg.early_stop:
            # The sequential test compares edges on the same minibatches: all are scored together.
            scores = gm_scores_early_stop(ctx, edges, self.cfg)
            for edge in edges:
                s = scores[edge]
                log.info(f"GM node {ctx.leaf.id} edge {edge}: cut cost {s['cut_cost']:.4f} groups {s['groups']} "
                         f"({s['batches']} minibatches, margin {s['margin_se']} SE)")
            if ctx.progress_path is not None:
                write_json(ctx.progress_path, scores)
        todo = [e for e in edges if e not in scores]
        workers = resolve_workers(int(self.cfg.workers), ctx.trainer.device)
        with loop(f"GM node {ctx.leaf.id} ({len(edges)} edges)", "edge") as cell:  # what an interruption reports
            cell[2] = len(edges) - len(todo)
            for edge, score in scored_edges(lambda e: self.score_edge(ctx, e), todo, workers):
                cell[2] += 1
                scores[edge] = score
                log.info(f"GM node {ctx.leaf.id} edge {edge}: cut cost {score['cut_cost']:.4f} groups {score['groups']}")
                if ctx.progress_path is not None:
                    write_json(ctx.progress_path, scores)
        best = min(edges, key=rank_key(scores, edges, option(self.cfg.cut)))
        groups = scores[best]["groups"]
        # data parallel: every rank scored the same all-reduced rows; rank 0's decision is the one
        # all ranks split on (made once, broadcast: infra/distributed.py agree)
        return distributed.agree(SplitDecision(best, groups, {e: scores[e] for e in edges}))
