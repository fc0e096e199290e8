"""Gradient matching (paper 3.3, App. B.2; docs/method-facts.md).

For op o on edge e and one training minibatch b, g_o^b is ONE vector: the gradients of all
shared weights (the space decides which) flattened and concatenated, with op o alone enabled on e
while the other edges keep the base algorithm's weighting (its ``score_weights`` hook; a sampled
path is drawn once per minibatch and shared by all ops of the edge). ``op_gradients`` is the one
function that computes these rows: ``criteria/gm/fast.py`` (shared prefix once, ``criterion.batched_ops``);
``plain_op_gradients`` is the official per-op loop it must equal (tests, ``gmnas bench``).

``criterion.average=distance`` (default, official ``split_supernet`` / ``train_search_ws.py`` and
App. B.2 "averaging over 100 mini-batches"): the distance matrix is computed on every minibatch and
the matrices are averaged, D = mean_b d(g_o^b, g_o'^b), with d = 1 - cos (cosine), 1 - the mean
over output filters of the per-filter cosine (per_filter_cosine), or the official squared
difference sum_i (g_o,i - g_o',i)^2 (l2, ``match_loss('mse')``). ``criterion.average=gradient``
applies d once to the minibatch-mean gradients (the estimator of earlier gmnas versions).

The cut of the similarity graph (1 - D; -D for l2) gives the groups and its cost ranks edges:
the lowest cost is split first (paper 3.4; ``criterion.cut``; balanced cuts compare edges on the
mean cut similarity, ``edge_cost``).

``criterion.early_stop=true``: the confidence early stop of ``criteria/gm/stop.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from gmnas_cli.config.derived import option
from gmnas_cli.criteria.base import SplitContext
from gmnas_cli.criteria.cut import balanced_min_cut, ncut, within_group_cut
from gmnas_cli.criteria.gm.fast import fast_op_gradients
from gmnas_cli.infra.distributed import shard_grads
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.logging import progress_bar
from gmnas_cli.infra.seeding import derive_seed, generator

Layout = list[tuple[int, tuple[int, ...]]]  # per shared parameter: (offset in a row, shape)


def row_layout(shared: list[torch.nn.Parameter]) -> Layout:
    layout, o = [], 0
    for p in shared:
        layout.append((o, tuple(p.shape)))
        o += p.numel()
    return layout


def op_gradients(ctx: SplitContext, edge: str, ops: list[str], batch: tuple[torch.Tensor, torch.Tensor],
                 index: int) -> torch.Tensor:
    """``plain_op_gradients``' rows, computed by ``fast.fast_op_gradients`` (less repeated work)."""
    return fast_op_gradients(ctx, edge, ops, batch, index)


def plain_op_gradients(ctx: SplitContext, edge: str, ops: list[str], batch: tuple[torch.Tensor, torch.Tensor],
                       index: int) -> torch.Tensor:
    """Flat shared-weight gradients, one float32 row per op of ``edge``: [len(ops), P].

    Minibatch ``index`` of the split: op k alone on the edge, the other edges weighted by the
    algorithm's ``score_weights`` drawn once from the (seed, leaf, edge, index) generator.
    The scored op's weight is 1 (official NB201 and RSPS), or with ``criterion.scored_weight=softmax``
    its current relaxed weight (official DARTS space, ``weights_normal_cp[eid, opid]``; algorithms
    that train single paths keep 1, as the official ``rsws`` mode).
    """
    trainer, net, algo = ctx.trainer, ctx.trainer.net, ctx.trainer.algo
    space = ctx.space
    shared = ctx.shared_parameters(edge)
    total = sum(p.numel() for p in shared)
    dev = shared[0].device if shared else torch.device("cpu")
    rows = torch.zeros(len(ops), total, device=dev)
    gen = generator(ctx.seed, "gm-path", ctx.leaf.id, edge, index)
    base_w, base_active = algo.score_weights(gen)  # shared by all ops of this edge
    relaxed = base_active is None
    base_active = [list(a) for a in (base_active or net.enabled)]
    e_idx = space.edges.index(edge)
    keep_weight = option(trainer.cfg.criterion.scored_weight) == "softmax" and relaxed
    for i, op in enumerate(ops):
        k = space.ops.index(op)
        w = base_w.detach().clone()
        scored = float(w[e_idx, k]) if keep_weight else 1.0
        w[e_idx] = 0.0
        w[e_idx, k] = scored
        active = list(base_active)
        active[e_idx] = [k]
        if not shared:
            continue
        # data parallel: per shard of the minibatch, averaged over shards and ranks (infra/distributed.py)
        grads, _ = shard_grads(lambda b, w=w, active=active: trainer.loss_fn(net(b[0], w, active), b[1]), batch, shared,
                               context=trainer._autocast)
        o = 0
        for p, g in zip(shared, grads):
            if g is not None:
                rows[i, o : o + p.numel()] = g.reshape(-1).float()
            o += p.numel()
    return rows


def minibatch_distance(rows: torch.Tensor, kind: str, layout: Layout) -> np.ndarray:
    """The op distance matrix of one set of gradient rows (float64, symmetric, zero diagonal)."""
    n = rows.shape[0]
    if rows.shape[1] == 0:
        return np.zeros((n, n))
    if kind == "per_filter_cosine":
        # Zhao et al. 2021a: cosine per output filter of each weight tensor (1-D tensors skipped),
        # averaged over filters (official: summed; the same ranking and cut).
        total = torch.zeros(n, n, dtype=torch.float64, device=rows.device)
        count = 0
        for o, shape in layout:
            if len(shape) < 2:
                continue
            numel = int(np.prod(shape))
            f = rows[:, o : o + numel].double().reshape(n, shape[0], -1)
            f = f / f.norm(dim=2, keepdim=True).clamp_min(1e-12)
            total += torch.einsum("iod,jod->ij", f, f)
            count += shape[0]
        dist = 1.0 - (total / max(count, 1)).cpu().numpy()
    else:
        flat = rows.double()
        if kind == "l2":  # official match_loss('mse'): sum of squared differences
            sq = flat.pow(2).sum(1)
            dist = (sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T).clamp_min(0.0).cpu().numpy()
        else:
            normed = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
            dist = 1.0 - (normed @ normed.T).cpu().numpy()
    dist = 0.5 * (dist + dist.T)  # exact symmetry despite float round-off
    np.fill_diagonal(dist, 0.0)
    return dist


def gm_minibatches(ctx: SplitContext, batches: int) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
    """The scoring minibatches of a leaf split as (index, batch): seeded passes over the weights
    half, the same for every edge; augmented as the official code's training batches unless
    ``criterion.augment=false``."""
    trainer = ctx.trainer
    bs = int(trainer.cfg.train.batch_size)
    augment = bool(getattr(trainer.cfg.criterion, "augment", True)) and bool(trainer.cfg.train.augment)
    split = trainer.train_split
    per_epoch = split.num_batches(bs, drop_last=True)
    if per_epoch == 0:
        raise ConfigError(f"train.batch_size={bs} exceeds the {len(split)} images of the weights half (GM)")
    done, epoch = 0, 0
    while done < batches:
        it = split.batches(bs, derive_seed(ctx.seed, "gm", ctx.leaf.id, ctx.split_index, epoch),
                           augment=augment, drop_last=True)
        for b, batch in enumerate(it):
            if done >= batches or b >= per_epoch:
                break
            yield done, trainer._prep(batch)
            done += 1
        epoch += 1


class EdgeScorer:
    """One edge's running GM estimate: per-minibatch distance matrices (``average=distance``)
    or the sum of gradient rows (``average=gradient``)."""

    def __init__(self, ctx: SplitContext, edge: str, ops: list[str], cfg: Any = None) -> None:
        cfg = cfg if cfg is not None else ctx.trainer.cfg.criterion
        self.ctx, self.edge, self.ops = ctx, edge, ops
        self.kind = option(cfg.similarity)
        self.average = option(cfg.average)
        self.layout = row_layout(ctx.shared_parameters(edge))
        self.dists: list[np.ndarray] = []  # per minibatch (average=distance)
        self.grad_sum: torch.Tensor | None = None  # average=gradient
        self.batches = 0

    def add_batch(self, done: int, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        rows = op_gradients(self.ctx, self.edge, self.ops, batch, done)
        if self.average == "gradient":
            self.grad_sum = rows if self.grad_sum is None else self.grad_sum.add_(rows)
        else:
            self.dists.append(minibatch_distance(rows, self.kind, self.layout))
        self.batches += 1

    def distance(self) -> np.ndarray:
        """The GM distance matrix of the minibatches added so far."""
        n = len(self.ops)
        if self.batches == 0:
            return np.zeros((n, n))
        if self.average == "gradient":
            return minibatch_distance(self.grad_sum / self.batches, self.kind, self.layout)
        return np.mean(np.stack(self.dists), axis=0)


_EdgeScorer = EdgeScorer  # the name `gmnas bench` imports


def save_bn_buffers(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}


def restore_bn_buffers(net: torch.nn.Module, buffers: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():  # scoring must not move BN statistics of the parent
        state = net.state_dict()
        for k, v in buffers.items():
            state[k].copy_(v)


def gm_distance(ctx: SplitContext, edge: str, ops: list[str], batches: int, cfg: Any = None) -> np.ndarray:
    """The GM distance matrix of ``edge``'s ops over ``batches`` training minibatches."""
    net = ctx.trainer.net
    scorer = EdgeScorer(ctx, edge, ops, cfg)
    buffers = save_bn_buffers(net)
    net.train()
    with progress_bar(f"GM node {ctx.leaf.id} edge {edge}", batches, "minibatch") as advance:
        for done, batch in gm_minibatches(ctx, batches):
            scorer.add_batch(done, batch)
            advance(1)
    restore_bn_buffers(net, buffers)
    return scorer.distance()


def cut_similarity(dist: np.ndarray, kind: str) -> np.ndarray:
    """The similarity graph a balanced/normalised cut works on: 1 - D (-D for l2)."""
    return -dist if kind == "l2" else 1.0 - dist


def score_from_distance(dist: np.ndarray, ops: list[str], cfg: Any, branching: int) -> dict[str, Any]:
    """Distances, cut (``criterion.cut``), its cost and groups of one edge."""
    kind, cut_kind = option(cfg.similarity), option(cfg.cut)
    if cut_kind == "within":
        groups, cost = within_group_cut(dist, branching)
    else:
        groups, cost = (ncut if cut_kind == "ncut" else balanced_min_cut)(cut_similarity(dist, kind), branching)
    return {"ops": ops, "distance": np.asarray(dist).round(8).tolist(), "cut_cost": round(float(cost), 8),
            "groups": [[ops[i] for i in g] for g in groups]}


def cross_pairs(sizes: list[int]) -> int:
    """Unordered op pairs in different groups of a partition with these group sizes."""
    n = sum(sizes)
    return (n * n - sum(s * s for s in sizes)) // 2


def edge_cost(score: dict[str, Any], rule: str) -> float:
    """The cost edges are compared on (the lowest is split first, paper 3.4).

    ``balanced``: the mean similarity across the cut, ``cut_cost`` / cross-group pairs. The pair
    count depends only on the op count and B (9 for 6 ops and 12 for 7 at B=2), so within an edge
    the chosen partition is the same as by the sum, and where every edge has the same op count
    (NB201, DARTS) the order of edges is too; on MobileNet (6-op stage-first blocks, 7-op others)
    the sum would favour the 6-op blocks. ``within`` (the official ``mincut_split_darts`` and
    ``mincut_split_proxylessnas`` rule) and ``ncut``: ``cut_cost`` itself, as the official code.
    """
    cost = float(score["cut_cost"])
    if rule != "balanced":
        return cost
    return cost / max(cross_pairs([len(g) for g in score["groups"]]), 1)


def rank_key(scores: dict[str, dict[str, Any]], edges: list[str], rule: str) -> Any:
    """Sort key of edges: ``edge_cost``, then ``cut_cost`` (which orders edges of equal op count
    exactly as before the normalisation, float rounding included), then edge order."""
    return lambda e: (edge_cost(scores[e], rule), scores[e]["cut_cost"], edges.index(e))


def decision_state(scores: dict[str, dict[str, Any]], edges: list[str], rule: str = "balanced") -> tuple:
    """What a split decides from scores: edges ordered by ``rank_key``, and the groups of the first."""
    order = sorted(edges, key=rank_key(scores, edges, rule))
    return tuple(order), tuple(tuple(g) for g in scores[order[0]]["groups"])


