"""Gradient matching (paper 3.3; DESIGN.md "Facts the paper leaves out").

For op o on edge e, g_o is ONE vector: the gradients of all shared weights (the space decides
which) flattened and concatenated, with op o alone enabled on e while the other edges keep the
base algorithm's weighting (its ``score_weights`` hook; a sampled path is drawn once per
minibatch and shared by all ops of the edge). g_o is averaged over ``criterion.batches``
training minibatches, then distance(o, o') = 1 - cos(g_o, g_o') (or per-filter cosine, or L2:
paper Table 6). The balanced min-cut of the similarity graph gives the groups, and its cut cost
ranks edges: the lowest cut cost is split first (paper 3.4).

``criterion.early_stop=true`` makes the scores cheaper with the same decisions in practice: all
candidate edges are scored together, minibatch by minibatch (the same minibatches, paths and
gradients as the edge-by-edge computation), and after every minibatch the decision state is
recomputed from the running averages: the order of the edges by cut cost (ties by edge order)
and the groups of the first edge. Averaging stops after minibatch b once b >=
``criterion.early_stop_min_batches`` and that state has not changed for
``criterion.early_stop_patience`` consecutive minibatches, or at ``criterion.batches`` (the
full computation). Scores record how many minibatches they averaged (``batches``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gmnas_cli.criteria.base import CRITERIA, Criterion, SplitContext, SplitDecision
from gmnas_cli.criteria.cut import balanced_min_cut, ncut
from gmnas_cli.errors import ConfigError
from gmnas_cli.io import read_json, write_json
from gmnas_cli.logging import log, progress_bar
from gmnas_cli.seeding import derive_seed, generator


def similarity_matrix(grads: list[list[torch.Tensor]], kind: str) -> np.ndarray:
    """Pairwise similarity of per-op gradient lists (one tensor per shared parameter)."""
    n = len(grads)
    sim = np.zeros((n, n))
    if kind == "per_filter_cosine":
        # Zhao et al. 2021a: cosine per output filter of each weight tensor, averaged over filters.
        rows = [torch.cat([g.reshape(g.shape[0], -1) if g.dim() > 1 else g.reshape(1, -1) for g in gl
                           if g.dim() > 1]) for gl in grads]
        for i in range(n):
            for j in range(n):
                sim[i, j] = float(F.cosine_similarity(rows[i], rows[j], dim=1, eps=1e-12).mean())
        return sim
    flat = torch.stack([torch.cat([g.reshape(-1) for g in gl]) for gl in grads]).double()
    if kind == "l2":
        return -torch.cdist(flat, flat).cpu().numpy()  # similarity = -distance
    normed = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (normed @ normed.T).cpu().numpy()


def distance_from_similarity(sim: np.ndarray, kind: str) -> np.ndarray:
    dist = -sim if kind == "l2" else 1.0 - sim
    dist = 0.5 * (dist + dist.T)  # exact symmetry despite float round-off
    np.fill_diagonal(dist, 0.0)
    return dist


def gm_minibatches(ctx: SplitContext, batches: int) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
    """The scoring minibatches of a leaf split as (index, batch): seeded passes over the weights
    half without augmentation, the same for every edge."""
    trainer = ctx.trainer
    bs = int(trainer.cfg.train.batch_size)
    split = trainer.train_split
    per_epoch = split.num_batches(bs, drop_last=True)
    if per_epoch == 0:
        raise ConfigError(f"train.batch_size={bs} exceeds the {len(split)} images of the weights half (GM)")
    done, epoch = 0, 0
    while done < batches:
        it = split.batches(bs, derive_seed(ctx.seed, "gm", ctx.leaf.id, ctx.split_index, epoch),
                           augment=False, drop_last=True)
        for b, batch in enumerate(it):
            if done >= batches or b >= per_epoch:
                break
            yield done, trainer._prep(batch)
            done += 1
        epoch += 1


class _EdgeScorer:
    """Per-op gradient sums of one edge (one flat buffer per op, viewed per shared parameter)."""

    def __init__(self, ctx: SplitContext, edge: str, ops: list[str]) -> None:
        space, net = ctx.space, ctx.trainer.net
        self.ctx, self.edge, self.ops = ctx, edge, ops
        self.e_idx = space.edges.index(edge)
        self.op_idx = [space.ops.index(o) for o in ops]
        self.shared = [p for p in space.shared_parameters(net, edge) if p.requires_grad]
        total = sum(p.numel() for p in self.shared)
        dev = self.shared[0].device if self.shared else torch.device("cpu")
        self.flat = torch.zeros(len(ops), total, device=dev)
        self.sums: list[list[torch.Tensor]] = []
        for i in range(len(ops)):
            views, o = [], 0
            for p in self.shared:
                views.append(self.flat[i, o : o + p.numel()].view_as(p))
                o += p.numel()
            self.sums.append(views)
        self.batches = 0

    def add_batch(self, done: int, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Add minibatch ``done``'s gradients of every op (op alone on the edge, other edges weighted
        by the algorithm's ``score_weights``, one draw per minibatch shared by the edge's ops)."""
        trainer, net, algo = self.ctx.trainer, self.ctx.trainer.net, self.ctx.trainer.algo
        x, y = batch
        gen = generator(self.ctx.seed, "gm-path", self.ctx.leaf.id, self.edge, done)
        base_w, base_active = algo.score_weights(gen)  # shared by all ops of this edge
        base_active = [list(a) for a in (base_active or net.enabled)]
        e_idx = self.e_idx
        for i, k in enumerate(self.op_idx):
            w = base_w.detach().clone()
            w[e_idx] = 0.0
            w[e_idx, k] = 1.0
            active = list(base_active)
            active[e_idx] = [k]
            with trainer._autocast():
                loss = trainer.loss_fn(net(x, w, active), y)
            grads = torch.autograd.grad(loss, self.shared, allow_unused=True)
            for acc, g in zip(self.sums[i], grads):
                if g is not None:
                    acc.add_(g.float())
        self.batches += 1

    def mean(self) -> list[list[torch.Tensor]]:
        """Per op, the gradients averaged over the minibatches added so far."""
        n = max(self.batches, 1)
        return [[s / n for s in gl] for gl in self.sums]

    def similarity(self, kind: str) -> np.ndarray:
        """``similarity_matrix(self.mean(), kind)``, from the flat buffers without copies per parameter."""
        if kind == "per_filter_cosine" or not self.shared:
            return similarity_matrix(self.mean(), kind)
        flat = (self.flat / max(self.batches, 1)).double()  # the same values as similarity_matrix's
        if kind == "l2":
            return -torch.cdist(flat, flat).cpu().numpy()
        normed = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return (normed @ normed.T).cpu().numpy()


def _bn_buffers(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}


def _restore_buffers(net: torch.nn.Module, buffers: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():  # scoring must not move BN statistics of the parent
        state = net.state_dict()
        for k, v in buffers.items():
            state[k].copy_(v)


def gm_gradients(ctx: SplitContext, edge: str, ops: list[str], batches: int) -> list[list[torch.Tensor]]:
    """Average shared-weight gradients per op of ``edge`` over ``batches`` training minibatches."""
    net = ctx.trainer.net
    scorer = _EdgeScorer(ctx, edge, ops)
    buffers = _bn_buffers(net)
    net.train()
    with progress_bar(f"GM node {ctx.leaf.id} edge {edge}", batches) as advance:
        for done, batch in gm_minibatches(ctx, batches):
            scorer.add_batch(done, batch)
            advance(1)
    _restore_buffers(net, buffers)
    return scorer.mean()


def _kind(cfg: Any) -> str:
    return str(getattr(cfg.similarity, "value", cfg.similarity))


def score_from_gradients(grads: list[list[torch.Tensor]], ops: list[str], cfg: Any, branching: int) -> dict[str, Any]:
    """Distances, balanced (or normalised) cut, its cost and groups of one edge's op gradients."""
    return score_from_similarity(similarity_matrix(grads, _kind(cfg)), ops, cfg, branching)


def score_from_similarity(sim: np.ndarray, ops: list[str], cfg: Any, branching: int) -> dict[str, Any]:
    """Distances, balanced (or normalised) cut, its cost and groups from an op similarity matrix."""
    kind = _kind(cfg)
    dist = distance_from_similarity(sim, kind)
    sim_sym = -dist if kind == "l2" else 1.0 - dist
    cut_kind = str(getattr(cfg.cut, "value", cfg.cut))
    groups, cost = (ncut if cut_kind == "ncut" else balanced_min_cut)(sim_sym, branching)
    return {"ops": ops, "distance": dist.round(8).tolist(), "cut_cost": round(float(cost), 8),
            "groups": [[ops[i] for i in g] for g in groups]}


def decision_state(scores: dict[str, dict[str, Any]], edges: list[str]) -> tuple:
    """What a split decides from scores: edges ordered by cut cost (ties: edge order), and the
    groups of the first."""
    order = sorted(edges, key=lambda e: (scores[e]["cut_cost"], edges.index(e)))
    return tuple(order), tuple(tuple(g) for g in scores[order[0]]["groups"])


def gm_scores_early_stop(ctx: SplitContext, edges: list[str], cfg: Any,
                         known: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Score ``edges`` together, stopping once the decision state is stable (module docstring).

    ``known``: scores of other candidate edges computed before (they take part in the edge order).
    """
    known = dict(known or {})
    batches = int(cfg.batches)
    patience = max(int(cfg.early_stop_patience), 1)
    min_batches = max(int(getattr(cfg, "early_stop_min_batches", 0)), 1)
    net = ctx.trainer.net
    scorers = {e: _EdgeScorer(ctx, e, ctx.ops_of(e)) for e in edges}
    all_edges = [e for e in ctx.candidate_edges() if e in scorers or e in known] or list(edges)
    buffers = _bn_buffers(net)
    net.train()
    state, stable = None, 0
    scores: dict[str, dict[str, Any]] = {}
    with progress_bar(f"GM node {ctx.leaf.id} ({len(edges)} edges, early stop)", batches) as advance:
        for done, batch in gm_minibatches(ctx, batches):
            for e in edges:
                scorers[e].add_batch(done, batch)
            scores = {e: score_from_similarity(sc.similarity(_kind(cfg)), sc.ops, cfg, ctx.branching)
                      for e, sc in scorers.items()}
            new_state = decision_state({**known, **scores}, all_edges)
            stable = stable + 1 if new_state == state else 0
            state = new_state
            advance(1)
            if done + 1 >= min_batches and stable >= patience:
                break
    _restore_buffers(net, buffers)
    for e, sc in scorers.items():
        scores[e]["batches"] = sc.batches
    return scores


@CRITERIA.register("gm")
class GradientMatching(Criterion):
    name = "gm"
    scores_edges = True

    def score_edge(self, ctx: SplitContext, edge: str) -> dict[str, Any]:
        ops = ctx.ops_of(edge)
        grads = gm_gradients(ctx, edge, ops, int(self.cfg.batches))
        return score_from_gradients(grads, ops, self.cfg, ctx.branching)

    def decide(self, ctx: SplitContext) -> SplitDecision:
        fixed = self.fixed_edge(ctx)
        edges = [fixed] if fixed is not None else ctx.candidate_edges()
        scores: dict[str, Any] = {}
        if ctx.progress_path is not None and ctx.progress_path.exists():
            scores = read_json(ctx.progress_path)  # edges scored before an interruption
        todo = [e for e in edges if e not in scores]
        if todo and self.cfg.early_stop:
            new = gm_scores_early_stop(ctx, todo, self.cfg, {e: scores[e] for e in edges if e in scores})
            for edge in todo:
                scores[edge] = new[edge]
                log.info(f"GM node {ctx.leaf.id} edge {edge}: cut cost {scores[edge]['cut_cost']:.4f} "
                         f"groups {scores[edge]['groups']} ({scores[edge]['batches']} minibatches)")
            if ctx.progress_path is not None:
                write_json(ctx.progress_path, scores)
        for edge in edges:
            if edge in scores:
                continue
            scores[edge] = self.score_edge(ctx, edge)
            log.info(f"GM node {ctx.leaf.id} edge {edge}: cut cost {scores[edge]['cut_cost']:.4f} "
                     f"groups {scores[edge]['groups']}")
            if ctx.progress_path is not None:
                write_json(ctx.progress_path, scores)
        best = min(edges, key=lambda e: (scores[e]["cut_cost"], edges.index(e)))
        groups = scores[best]["groups"]
        return SplitDecision(best, groups, {e: scores[e] for e in edges})
