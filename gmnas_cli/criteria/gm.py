"""Gradient matching (paper 3.3; DESIGN.md "Facts the paper leaves out").

For op o on edge e, g_o is ONE vector: the gradients of all shared weights (the space decides
which) flattened and concatenated, with op o alone enabled on e while the other edges keep the
base algorithm's weighting (its ``score_weights`` hook; a sampled path is drawn once per
minibatch and shared by all ops of the edge). g_o is averaged over ``criterion.batches``
training minibatches, then distance(o, o') = 1 - cos(g_o, g_o') (or per-filter cosine, or L2:
paper Table 6). The balanced min-cut of the similarity graph gives the groups, and its cut cost
ranks edges: the lowest cut cost is split first (paper 3.4).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gmnas_cli.criteria.base import CRITERIA, Criterion, SplitContext, SplitDecision
from gmnas_cli.criteria.cut import balanced_min_cut, ncut
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
        return -torch.cdist(flat, flat).numpy()  # similarity = -distance
    normed = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (normed @ normed.T).numpy()


def distance_from_similarity(sim: np.ndarray, kind: str) -> np.ndarray:
    dist = -sim if kind == "l2" else 1.0 - sim
    dist = 0.5 * (dist + dist.T)  # exact symmetry despite float round-off
    np.fill_diagonal(dist, 0.0)
    return dist


def gm_gradients(ctx: SplitContext, edge: str, ops: list[str], batches: int) -> list[list[torch.Tensor]]:
    """Average shared-weight gradients per op of ``edge`` over ``batches`` training minibatches."""
    trainer, space = ctx.trainer, ctx.space
    net, algo = trainer.net, trainer.algo
    e_idx = space.edges.index(edge)
    op_idx = [space.ops.index(o) for o in ops]
    shared = [p for p in space.shared_parameters(net, edge) if p.requires_grad]
    sums = [[torch.zeros_like(p) for p in shared] for _ in ops]
    buffers = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}
    bs = int(trainer.cfg.train.batch_size)
    split = trainer.train_split
    per_epoch = split.num_batches(bs, drop_last=True)
    net.train()
    done = 0
    with progress_bar(f"GM node {ctx.leaf.id} edge {edge}", batches) as advance:
        epoch = 0
        while done < batches:
            it = split.batches(bs, derive_seed(ctx.seed, "gm", ctx.leaf.id, ctx.split_index, epoch),
                               augment=False, drop_last=True)
            for b, batch in enumerate(it):
                if done >= batches or b >= per_epoch:
                    break
                x, y = trainer._prep(batch)
                gen = generator(ctx.seed, "gm-path", ctx.leaf.id, edge, done)
                base_w, base_active = algo.score_weights(gen)  # shared by all ops of this edge
                base_active = [list(a) for a in (base_active or net.enabled)]
                for i, k in enumerate(op_idx):
                    w = base_w.detach().clone()
                    w[e_idx] = 0.0
                    w[e_idx, k] = 1.0
                    active = list(base_active)
                    active[e_idx] = [k]
                    with trainer._autocast():
                        loss = trainer.loss_fn(net(x, w, active), y)
                    grads = torch.autograd.grad(loss, shared, allow_unused=True)
                    for acc, g in zip(sums[i], grads):
                        if g is not None:
                            acc.add_(g.float())
                done += 1
                advance(1)
            epoch += 1
    with torch.no_grad():  # scoring must not move BN statistics of the parent
        state = net.state_dict()
        for k, v in buffers.items():
            state[k].copy_(v)
    return [[s / batches for s in gl] for gl in sums]


@CRITERIA.register("gm")
class GradientMatching(Criterion):
    name = "gm"
    scores_edges = True

    def score_edge(self, ctx: SplitContext, edge: str) -> dict[str, Any]:
        ops = ctx.ops_of(edge)
        kind = str(getattr(self.cfg.similarity, "value", self.cfg.similarity))
        grads = gm_gradients(ctx, edge, ops, int(self.cfg.batches))
        sim = similarity_matrix(grads, kind)
        dist = distance_from_similarity(sim, kind)
        sim_sym = -dist if kind == "l2" else 1.0 - dist
        cut_kind = str(getattr(self.cfg.cut, "value", self.cfg.cut))
        groups, cost = (ncut if cut_kind == "ncut" else balanced_min_cut)(sim_sym, ctx.branching)
        return {"ops": ops, "distance": dist.round(8).tolist(), "cut_cost": round(float(cost), 8),
                "groups": [[ops[i] for i in g] for g in groups]}

    def decide(self, ctx: SplitContext) -> SplitDecision:
        fixed = self.fixed_edge(ctx)
        edges = [fixed] if fixed is not None else ctx.candidate_edges()
        scores: dict[str, Any] = {}
        if ctx.progress_path is not None and ctx.progress_path.exists():
            scores = read_json(ctx.progress_path)  # edges scored before an interruption
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
