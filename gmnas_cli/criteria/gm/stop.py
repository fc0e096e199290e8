"""GM confidence early stop (fidelity review item 16): a sequential test on per-minibatch costs.

All candidate edges are scored together, minibatch by minibatch (the same minibatches, paths and
gradients as the edge-by-edge computation of ``criteria/gm/criterion.py``). Every candidate (edge, partition)
of a linear cut (``balanced``: summed cut similarity; ``within``: summed within-group distance) has
a cost that is linear in D, hence a per-minibatch cost. After minibatch n (n >=
``criterion.early_stop_min_batches``) the leader is the decision of the running means; scoring
stops once, for every other (edge, partition), the mean paired per-minibatch cost difference to
the leader exceeds ``criterion.confidence`` standard errors of that difference, else at
``criterion.batches`` (the full computation, the same decision). Each edge records the minibatches
used (``batches``) and its smallest margin (``margin``, in cost units; ``margin_se``, in standard
errors, null when the difference has no spread).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gmnas_cli.config.derived import option
from gmnas_cli.criteria.base import SplitContext
from gmnas_cli.criteria.cut import candidate_partitions, partition_costs
from gmnas_cli.criteria.gm.scoring import (
    EdgeScorer,
    cut_similarity,
    decision_state,
    gm_minibatches,
    restore_bn_buffers,
    save_bn_buffers,
    score_from_distance,
)
from gmnas_cli.infra.logging import progress_bar


def _cost_matrix(scorer: EdgeScorer, cfg: Any, branching: int) -> np.ndarray:
    """[batches, K]: every candidate partition's cost on every minibatch (linear cuts only)."""
    rule = option(cfg.cut)
    stack = np.stack(scorer.dists)
    mat = cut_similarity(stack, scorer.kind) if rule == "balanced" else stack
    return partition_costs(mat, rule, branching)


def _partition_index(groups: list[list[str]], ops: list[str], cfg: Any, branching: int) -> int:
    target = tuple(sorted(tuple(sorted(ops.index(o) for o in g)) for g in groups))
    parts = candidate_partitions(option(cfg.cut), len(ops), branching)
    return [tuple(sorted(p)) for p in parts].index(target)


def confidence_margins(scorers: dict[str, EdgeScorer], scores: dict[str, dict[str, Any]], edges: list[str],
                       cfg: Any, branching: int) -> dict[str, tuple[float, float | None]]:
    """Per edge, the smallest (mean, mean / standard error) of the paired per-minibatch cost
    difference between its candidate partitions and the leading (edge, partition)."""
    order, _ = decision_state(scores, edges)
    lead = order[0]
    costs = {e: _cost_matrix(scorers[e], cfg, branching) for e in edges}
    k_lead = _partition_index(scores[lead]["groups"], scorers[lead].ops, cfg, branching)
    lead_cost = costs[lead][:, k_lead]
    n = len(lead_cost)
    out: dict[str, tuple[float, float | None]] = {}
    for e in edges:
        diff = costs[e] - lead_cost[:, None]
        if e == lead:
            diff = np.delete(diff, k_lead, axis=1)
        if diff.shape[1] == 0:
            out[e] = (float("inf"), None)
            continue
        mean = diff.mean(axis=0)
        se = diff.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full_like(mean, np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(se > 0, mean / np.where(se > 0, se, 1.0), np.where(mean > 0, np.inf, -np.inf))
        k = int(np.argmin(z))
        out[e] = (float(mean[k]), float(z[k]) if np.isfinite(z[k]) else None)
    return out


def _wins(margins: dict[str, tuple[float, float | None]], confidence: float) -> bool:
    for mean, z in margins.values():
        if mean == float("inf"):
            continue
        if not mean > 0:
            return False
        if z is not None and not z > confidence:
            return False
    return True


def gm_scores_early_stop(ctx: SplitContext, edges: list[str], cfg: Any) -> dict[str, dict[str, Any]]:
    """Score ``edges`` together, stopping by the confidence test (module docstring)."""
    batches = int(cfg.batches)
    min_batches = max(int(getattr(cfg, "early_stop_min_batches", 2)), 2)
    confidence = float(cfg.confidence)
    net = ctx.trainer.net
    scorers = {e: EdgeScorer(ctx, e, ctx.ops_of(e), cfg) for e in edges}
    buffers = save_bn_buffers(net)
    net.train()
    scores: dict[str, dict[str, Any]] = {}
    margins: dict[str, tuple[float, float | None]] = {}
    with progress_bar(f"GM node {ctx.leaf.id} ({len(edges)} edges, early stop)", batches, "minibatch") as advance:
        for done, batch in gm_minibatches(ctx, batches):
            for e in edges:
                scorers[e].add_batch(done, batch)
            advance(1)
            if done + 1 < min_batches and done + 1 < batches:
                continue
            scores = {e: score_from_distance(sc.distance(), sc.ops, cfg, ctx.branching) for e, sc in scorers.items()}
            margins = confidence_margins(scorers, scores, edges, cfg, ctx.branching)
            if _wins(margins, confidence):
                break
    restore_bn_buffers(net, buffers)
    for e, sc in scorers.items():
        mean, z = margins.get(e, (float("inf"), None))
        scores[e].update(batches=sc.batches, margin=None if mean == float("inf") else round(mean, 8),
                         margin_se=None if z is None else round(z, 4))
    return scores
