"""GM confidence early stop: a group-sequential test on per-minibatch costs.

All candidate edges are scored together, minibatch by minibatch (the same minibatches, paths and
gradients as the edge-by-edge computation of ``criteria/gm/criterion.py``). Every candidate (edge,
partition) of a linear cut (``balanced``: summed cut similarity; ``within``: summed within-group
distance) has a cost that is linear in D, hence a per-minibatch cost.

Looks: ``criterion.early_stop_looks`` minibatch counts, geometrically spaced from
``criterion.early_stop_min_batches`` up to (not including) ``criterion.batches`` (``look_schedule``),
fixed before scoring. At a look after n minibatches the leader is the decision of the running
means; scoring stops once, for every other (edge, partition), the paired per-minibatch cost
difference to the leader has a t statistic mean / (sd / sqrt(n)) above the Student-t quantile
t_{n-1}(1 - alpha / looks) (``stop_threshold``): the error rate alpha = 1 - Phi(``criterion.confidence``)
(3: 0.00135, the one-sided normal tail of 3 standard errors) is spent in equal parts over the
looks (Bonferroni, the simplest alpha-spending rule), so the chance that a tied or worse
alternative is ever declared beaten is at most alpha over all looks together. A difference without
spread is no evidence. Otherwise scoring runs to ``criterion.batches``: the full computation, the
same decision. Each edge records the minibatches used (``batches``) and its smallest margin
(``margin``, in cost units; ``margin_se``, the t statistic, null when the difference has no spread).
Measured error rates: docs/gm-estimator.md (``simulate_pair``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from gmnas_cli.config.derived import option
from gmnas_cli.criteria.base import SplitContext
from gmnas_cli.criteria.cut import candidate_partitions, partition_costs
from gmnas_cli.criteria.gm.scoring import (
    EdgeScorer,
    cross_pairs,
    cut_similarity,
    decision_state,
    gm_minibatches,
    restore_bn_buffers,
    save_bn_buffers,
    score_from_distance,
)
from gmnas_cli.infra.logging import progress_bar


def _cost_matrix(scorer: EdgeScorer, cfg: Any, branching: int) -> np.ndarray:
    """[batches, K]: every candidate partition's cost on every minibatch (linear cuts only), on
    the scale edges are compared on (``scoring.edge_cost``: balanced cuts per cross-group pair)."""
    rule = option(cfg.cut)
    stack = np.stack(scorer.dists)
    mat = cut_similarity(stack, scorer.kind) if rule == "balanced" else stack
    costs = partition_costs(mat, rule, branching)
    if rule == "balanced":  # every balanced partition of n ops has the same number of cross pairs
        n = len(scorer.ops)
        costs = costs / max(cross_pairs([len(g) for g in candidate_partitions(rule, n, branching)[0]]), 1)
    return costs


def _partition_index(groups: list[list[str]], ops: list[str], cfg: Any, branching: int) -> int:
    target = tuple(sorted(tuple(sorted(ops.index(o) for o in g)) for g in groups))
    parts = candidate_partitions(option(cfg.cut), len(ops), branching)
    return [tuple(sorted(p)) for p in parts].index(target)


def confidence_margins(scorers: dict[str, EdgeScorer], scores: dict[str, dict[str, Any]], edges: list[str],
                       cfg: Any, branching: int) -> dict[str, tuple[float, float | None]]:
    """Per edge, the (mean, t statistic) of the paired per-minibatch cost difference between its
    weakest candidate partition and the leading (edge, partition); t is None without spread."""
    order, _ = decision_state(scores, edges, option(cfg.cut))
    lead = order[0]
    costs = {e: _cost_matrix(scorers[e], cfg, branching) for e in edges}
    k_lead = _partition_index(scores[lead]["groups"], scorers[lead].ops, cfg, branching)
    lead_cost = costs[lead][:, k_lead]
    out: dict[str, tuple[float, float | None]] = {}
    for e in edges:
        diff = costs[e] - lead_cost[:, None]
        if e == lead:
            diff = np.delete(diff, k_lead, axis=1)
        if diff.shape[1] == 0:
            out[e] = (float("inf"), None)
            continue
        mean, t = margin_stats(diff)
        k = int(np.argmin(np.where(np.isnan(t), -np.inf, t)))
        out[e] = (float(mean[k]), None if np.isnan(t[k]) else float(t[k]))
    return out


def margin_stats(diff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``diff`` [n, K] (paired per-minibatch cost differences, alternative minus
    leader): the mean and the t statistic mean / (sd / sqrt(n)); NaN where sd is 0 (no spread)."""
    n = diff.shape[0]
    mean = diff.mean(axis=0)
    sd = diff.std(axis=0, ddof=1) if n > 1 else np.zeros_like(mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(sd > 0, mean / (np.where(sd > 0, sd, 1.0) / np.sqrt(n)), np.nan)
    return mean, t


def look_schedule(batches: int, min_batches: int, looks: int) -> list[int]:
    """The minibatch counts at which the test looks: ``looks`` counts spaced geometrically from
    ``min_batches`` below ``batches`` (10, 100, 4 looks: [10, 18, 32, 56]); none if
    ``min_batches >= batches`` (the full computation)."""
    lo = max(int(min_batches), 2)
    if lo >= batches:
        return []
    ratio = (batches / lo) ** (1.0 / looks)
    return sorted({min(batches - 1, max(lo, round(lo * ratio ** j))) for j in range(looks)})


def stop_threshold(n: int, confidence: float, looks: int) -> float:
    """Student-t boundary at a look after n minibatches: t_{n-1}(1 - alpha / looks), alpha =
    1 - Phi(confidence) (Bonferroni spending of alpha over the fixed looks)."""
    alpha = float(stats.norm.sf(confidence))
    return float(stats.t.isf(alpha / max(looks, 1), n - 1))


def _wins(margins: dict[str, tuple[float, float | None]], threshold: float) -> bool:
    """Every alternative beaten: positive mean difference with a t statistic above ``threshold``
    (no spread: no evidence, not a win)."""
    for mean, t in margins.values():
        if mean == float("inf"):
            continue
        if not mean > 0 or t is None or not t > threshold:
            return False
    return True


def simulate_pair(gap: float, sims: int, batches: int, min_batches: int, looks: int, confidence: float,
                  seed: int = 0) -> dict[str, float]:
    """Fixed-seed simulation of the test on two candidates whose per-minibatch costs are
    N(0, 1) and N(gap, 1) (gap in per-minibatch standard deviations; 0: an exact tie).
    Returns the fraction of runs stopped early, the fraction whose early decision differs from
    the full computation's (argmin of the means over ``batches``), and the minibatches used / full."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((sims, batches))
    b = rng.standard_normal((sims, batches)) + gap
    full = (b.mean(axis=1) < a.mean(axis=1)).astype(int)  # 1: b chosen
    decision, used = full.copy(), np.full(sims, batches)
    open_ = np.ones(sims, dtype=bool)
    for n in look_schedule(batches, min_batches, looks):
        diff = a[:, :n] - b[:, :n]  # a minus b; the leader is the lower mean cost
        mean = diff.mean(axis=1)
        sd = diff.std(axis=1, ddof=1)
        t = np.abs(mean) / (sd / np.sqrt(n))
        stop = open_ & (sd > 0) & (t > stop_threshold(n, confidence, looks))
        decision[stop] = (mean[stop] > 0).astype(int)
        used[stop] = n
        open_ &= ~stop
    early = ~open_
    return {"stopped_early": float(early.mean()), "differs": float((decision != full).mean()),
            "used": float(used.sum() / (sims * batches))}


def gm_scores_early_stop(ctx: SplitContext, edges: list[str], cfg: Any) -> dict[str, dict[str, Any]]:
    """Score ``edges`` together, stopping by the confidence test (module docstring)."""
    batches = int(cfg.batches)
    confidence, n_looks = float(cfg.confidence), int(cfg.early_stop_looks)
    looks = set(look_schedule(batches, int(cfg.early_stop_min_batches), n_looks))
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
            n = done + 1
            if n not in looks and n < batches:
                continue
            scores = {e: score_from_distance(sc.distance(), sc.ops, cfg, ctx.branching) for e, sc in scorers.items()}
            margins = confidence_margins(scorers, scores, edges, cfg, ctx.branching)
            if n in looks and _wins(margins, stop_threshold(n, confidence, n_looks)):
                break
    restore_bn_buffers(net, buffers)
    for e, sc in scorers.items():
        mean, z = margins.get(e, (float("inf"), None))
        scores[e].update(batches=sc.batches, margin=None if mean == float("inf") else round(mean, 8),
                         margin_se=None if z is None else round(z, 4))
    return scores
