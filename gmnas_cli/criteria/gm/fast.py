"""Per-op shared-weight gradients of one GM minibatch, computed with less repeated work.

The contract of ``gm.op_gradients(ctx, edge, ops, batch, index) -> Tensor[n_ops, P]``: row i is
the flat gradient of every shared parameter (``space.shared_parameters``, in that order) of the
loss with op ``ops[i]`` alone on ``edge`` (weight 1, or its softmax weight with
``criterion.scored_weight=softmax``) and the other edges weighted by the algorithm's
``score_weights`` (one draw per minibatch, shared by the edge's ops: docs/method-facts.md). The official
GM-NAS scoring loop, ``gm.plain_op_gradients``, runs one full forward and backward per op. Here:

* **Shared prefix** (always): the forward pass before the scored edge's first use (the stem and
  the first cell's nodes before the edge's target node: ``Supernet.forward_prefix``) does not
  depend on the op, so it is computed once; each op runs only the rest (``forward_suffix``) and
  its gradient reaches the prefix's shared parameters through one backward of the kept prefix
  graph. Same gradients as the plain loop (chain rule; float rounding aside).
* **Batched ops** (``criterion.batched_ops=true``): the ops' suffix passes run as one
  ``torch.func.vmap`` over the op index of ``grad`` (the one-hot row of the scored edge is the
  mapped input; all of the edge's ops are computed and the others weighted 0, which adds
  exact zeros), so a GPU runs one pass of ``n_ops`` times the work instead of ``n_ops`` small
  ones. (Where a max-pool window holds tied maxima, which input gets the gradient depends on the
  kernel and memory layout, so channels-last runs can differ there: both are valid subgradients.)
  BN layers use batch statistics during scoring either way (training mode), so their
  running-statistics updates are switched off inside the mapped pass (criteria/gm/criterion.py restores them after
  scoring anyway).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from gmnas_cli.config.derived import option
from gmnas_cli.criteria.base import SplitContext
from gmnas_cli.infra import distributed
from gmnas_cli.infra.seeding import generator
from gmnas_cli.spaces.copies import Copies

Batch = tuple[torch.Tensor, torch.Tensor]


def path_weights(ctx: SplitContext, edge: str, ops: list[str], index: int
                 ) -> tuple[torch.Tensor, list[list[int]], int, list[int], bool]:
    """The other edges' weighting for minibatch ``index`` (``score_weights``, seeded by leaf,
    edge and minibatch), the base active lists, the edge's row, its ops' columns, and whether the
    scored op keeps its relaxed weight (``criterion.scored_weight=softmax``, relaxed algorithms)."""
    net, algo, space = ctx.trainer.net, ctx.trainer.algo, ctx.space
    gen = generator(ctx.seed, "gm-path", ctx.leaf.id, edge, index)
    base_w, base_active = algo.score_weights(gen)  # shared by all ops of this edge
    keep = option(ctx.trainer.cfg.criterion.scored_weight) == "softmax" and base_active is None
    active = [list(a) for a in (base_active or net.enabled)]
    return base_w.detach(), active, space.edges.index(edge), [space.ops.index(o) for o in ops], keep


def scored_rows(base_w: torch.Tensor, e_idx: int, op_idx: list[int], keep: bool) -> torch.Tensor:
    """``[n_ops, E, K]``: ``base_w`` with row ``e_idx`` holding only op k's weight (1, or its
    own weight with ``keep``), each op in turn (``gm.plain_op_gradients``' weights)."""
    w = base_w.unsqueeze(0).repeat(len(op_idx), 1, 1)
    cols = torch.tensor(op_idx, device=base_w.device)
    scored = base_w[e_idx, cols] if keep else torch.ones(len(op_idx), dtype=base_w.dtype, device=base_w.device)
    w[:, e_idx] = 0.0
    w[torch.arange(len(op_idx), device=base_w.device), e_idx, cols] = scored
    return w


@contextmanager
def batch_stats_only(net: nn.Module) -> Iterator[None]:
    """BN layers in training mode without running-statistics updates (the same outputs)."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in bns:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in bns:
            m.track_running_stats = True


def _flat(grads: list[torch.Tensor | None], params: list[nn.Parameter], lead: tuple[int, ...]) -> torch.Tensor:
    """Concatenate gradients (``None``: zeros) as ``lead + (P,)`` float rows."""
    parts = [torch.zeros(*lead, p.numel(), device=p.device) if g is None else g.float().reshape(*lead, -1)
             for g, p in zip(grads, params)]
    return torch.cat(parts, dim=-1) if parts else torch.zeros(*lead, 0)


def batching_mode(ctx: SplitContext, batched: bool | str | None = None) -> str:
    """``off``, ``vmap`` or ``channels``: ``batched`` (True: vmap) or ``criterion.batched_ops``,
    ``auto`` resolved (channels where the supernet has them, else off)."""
    if batched is None:
        batched = ctx.trainer.cfg.criterion.batched_ops
    mode = {True: "vmap", False: "off"}.get(batched, None) if isinstance(batched, bool) else \
        option(batched)
    if mode == "auto":
        mode = "channels" if ctx.trainer.net.supports_copies() else "off"
    if mode == "channels" and not ctx.trainer.net.supports_copies():
        raise ValueError(f"{type(ctx.trainer.net).__name__} has no copies-side-by-side pass")
    return str(mode)


def fast_op_gradients(ctx: SplitContext, edge: str, ops: list[str], batch: Batch, index: int = 0,
                      batched: bool | str | None = None) -> torch.Tensor:
    """``[len(ops), P]`` flat shared gradients of minibatch ``index`` (module docstring);
    ``batched``: the suffix passes' batching (``batching_mode``; default ``criterion.batched_ops``).

    Data parallel (``batch_shards`` > 1 or torchrun, infra/distributed.py): this rank computes the
    rows of its shards of the minibatch only and the rows are averaged over all shards and ranks
    before any distance, as the weight gradients are (each shard's mean loss; BatchNorm statistics
    per shard), so every rank holds the same rows and a rank's memory is that of one shard's
    passes. One process with ``batch_shards=k`` computes bitwise what k ranks compute."""
    parts = distributed.local_shards(batch)
    if len(parts) == 1 and not distributed.active():  # one process, one shard: the plain call
        return _shard_rows(ctx, edge, ops, batch, index, batched)
    rows = None
    for part in parts:
        r = _shard_rows(ctx, edge, ops, part, index, batched)
        rows = r if rows is None else rows.add_(r)
    distributed.allreduce_mean([rows], count=distributed.shards_total())
    return rows


def _shard_rows(ctx: SplitContext, edge: str, ops: list[str], batch: Batch, index: int,
                batched: bool | str | None) -> torch.Tensor:
    """``fast_op_gradients``' rows of one (shard of a) minibatch."""
    trainer, net = ctx.trainer, ctx.trainer.net
    mode = batching_mode(ctx, batched)
    x, y = batch
    base_w, base_active, e_idx, op_idx, keep = path_weights(ctx, edge, ops, index)
    shared = ctx.shared_parameters(edge)
    if not shared:
        return torch.zeros(len(ops), 0, device=base_w.device)
    with trainer._autocast():
        prefix = net.forward_prefix(x, base_w, base_active, e_idx)  # the scored row is unused there
    states = tuple(s.detach().requires_grad_() for s in prefix)
    if mode == "channels":
        scored = base_w[e_idx, op_idx] if keep else None
        rows, d_states = _suffix_copies(ctx, shared, states, base_w, base_active, e_idx, op_idx, scored, y)
    elif mode == "vmap":
        weights = scored_rows(base_w, e_idx, op_idx, keep)
        rows, d_states = _suffix_batched(ctx, shared, states, weights, base_active, e_idx, op_idx, y)
    else:
        weights = scored_rows(base_w, e_idx, op_idx, keep)
        rows, d_states = _suffix_sequential(ctx, shared, states, weights, base_active, e_idx, op_idx, y)
    if any(s.requires_grad for s in prefix):
        for i in range(len(op_idx)):  # the prefix's shared parameters: one backward per op
            g = torch.autograd.grad(prefix, shared, [d[i] for d in d_states], allow_unused=True,
                                    retain_graph=i + 1 < len(op_idx))
            rows[i] += _flat(list(g), shared, ())
    return rows


def _suffix_sequential(ctx: SplitContext, shared: list[nn.Parameter], states: tuple[torch.Tensor, ...],
                       weights: torch.Tensor, base_active: list[list[int]], e_idx: int, op_idx: list[int],
                       y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One suffix forward-backward per op (only that op computed on the edge)."""
    trainer, net = ctx.trainer, ctx.trainer.net
    rows, d_states = [], []
    for i, k in enumerate(op_idx):
        active = list(base_active)
        active[e_idx] = [k]
        with trainer._autocast():
            loss = trainer.loss_fn(net.forward_suffix(states, weights[i], active, e_idx), y)
        g = torch.autograd.grad(loss, [*shared, *states], allow_unused=True)
        rows.append(_flat(list(g[: len(shared)]), shared, ()))
        d_states.append([torch.zeros_like(s) if d is None else d for s, d in zip(states, g[len(shared):])])
    return torch.stack(rows), [torch.stack([d[j] for d in d_states]) for j in range(len(states))]


def _suffix_batched(ctx: SplitContext, shared: list[nn.Parameter], states: tuple[torch.Tensor, ...],
                    weights: torch.Tensor, base_active: list[list[int]], e_idx: int, op_idx: list[int],
                    y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """All ops' suffix passes as one vmap over the one-hot rows (every op of the edge computed)."""
    trainer, net = ctx.trainer, ctx.trainer.net
    names = {id(p): n for n, p in net.named_parameters()}
    keys = [names[id(p)] for p in shared]
    active = list(base_active)
    active[e_idx] = sorted(set(base_active[e_idx]) | set(op_idx))

    def loss_of(params: tuple[torch.Tensor, ...], st: tuple[torch.Tensor, ...], w: torch.Tensor) -> torch.Tensor:
        with trainer._autocast():
            return trainer.loss_fn(_call_suffix(net, keys, params, st, w, active, e_idx), y)

    detached = tuple(p.detach() for p in shared)
    with torch.no_grad(), batch_stats_only(net):
        g_params, g_states = vmap(grad(loss_of, argnums=(0, 1)), in_dims=(None, None, 0))(
            detached, tuple(s.detach() for s in states), weights)
    return _flat(list(g_params), shared, (len(op_idx),)), list(g_states)


def _suffix_copies(ctx: SplitContext, shared: list[nn.Parameter], states: tuple[torch.Tensor, ...],
                   base_w: torch.Tensor, base_active: list[list[int]], e_idx: int, op_idx: list[int],
                   scored: torch.Tensor | None, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """All ops' suffix passes as ONE pass of ``len(op_idx)`` network copies side by side in the
    channels (``Supernet.forward_suffix_copies``, spaces/darts/grouped.py): copy i has op i alone on the
    edge; each shared parameter enters as a leaf ``[n_ops, *shape]`` whose row i is copy i's, and
    the loss is the sum of the copies' losses, so one backward gives every op's gradient."""
    trainer, net = ctx.trainer, ctx.trainer.net
    r = len(op_idx)
    reps = [p.detach().unsqueeze(0).repeat(r, *([1] * p.dim())).requires_grad_() for p in shared]
    copies = Copies(r, {id(p): rep for p, rep in zip(shared, reps)})
    fmt = torch.channels_last if states[-1].is_contiguous(memory_format=torch.channels_last) and \
        not states[-1].is_contiguous() else torch.contiguous_format
    st = tuple(s.detach().repeat(1, r, 1, 1).contiguous(memory_format=fmt).requires_grad_() for s in states)
    with batch_stats_only(net), trainer._autocast():
        logits = net.forward_suffix_copies(st, base_w, base_active, e_idx, copies, op_idx, scored)
        loss = sum(trainer.loss_fn(logits[:, i], y) for i in range(r))
    g = torch.autograd.grad(loss, [*reps, *st], allow_unused=True)
    rows = _flat(list(g[: len(reps)]), shared, (r,))
    d_states = []
    for s, d in zip(st, g[len(reps):]):
        if d is None:
            d = torch.zeros_like(s)
        n, _, h, w = d.shape
        d_states.append(d.reshape(n, r, -1, h, w).transpose(0, 1).reshape(r, n, -1, h, w))
    return rows, d_states


class _Suffix(nn.Module):
    """``net.forward_suffix`` as a module forward (``functional_call`` calls ``forward``)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, st: tuple[torch.Tensor, ...], w: torch.Tensor, active: list[list[int]], e_idx: int) -> torch.Tensor:
        return self.net.forward_suffix(st, w, active, e_idx)


def _call_suffix(net: nn.Module, keys: list[str], params: tuple[torch.Tensor, ...],
                 st: tuple[torch.Tensor, ...], w: torch.Tensor, active: list[list[int]], e_idx: int) -> torch.Tensor:
    return functional_call(_Suffix(net), {f"net.{k}": p for k, p in zip(keys, params)}, (st, w, active, e_idx))
