"""Data parallelism inside one job: torchrun (or submitit ``tasks_per_node > 1``) ranks.

One module holds everything the training code needs (docs/cluster.md):
the rank and world size read from the torch distributed environment, ``barrier``, mean
all-reduce, the shards of a global batch, and the one-writer rule for files.

- ``train.batch_size`` (and ``retrain.batch_size``) stay the *global* batch. It is cut into
  ``batch_shards`` equal shards (0: one per rank); rank r takes shards ``r*k .. r*k+k-1`` of the
  same seeded batch (k = shards / world size) and accumulates them. BatchNorm sees one shard at a
  time, so a run with the same ``batch_shards`` gives the same numbers on 1, 2 or k ranks: one
  process with ``batch_shards=2`` is the exact single-process twin of ``torchrun --nproc-per-node 2``.
- Gradients are averaged over all shards explicitly (``shard_grads``, ``shard_backward``): weight
  gradients, alpha gradients, DARTS-2 virtual-step and finite-difference gradients, GM per-op
  gradients. A DDP wrapper would average none of the ``torch.autograd.grad`` results. BatchNorm
  running statistics are averaged over the shards the same way, so every rank holds the same state.
  Supernet validation batches are cut into the same shards (``ShardTotals``): each rank evaluates
  its own, the per-shard sums are all-reduced.
- Sampled paths need no communication: their generators are seeded by (seed, tag, epoch), never by
  the rank (training/trainer.py).
- Rank 0 alone writes files (``one_writer``); every rank reads the same files. A write is framed
  by two barriers, so between two barriers every rank sees the same files and takes the same branch.
- nccl on CUDA, gloo on CPU. ``world_size() == 1`` (no torchrun): every helper is the plain
  single-process operation, with no communication and the numerics of before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.infra.ranks import (  # noqa: F401  (re-exported: the rank helpers without torch)
    _STATE,
    DistEnv,
    active,
    agree,
    barrier,
    check_ranks_agree,
    env,
    is_main,
    one_writer,
    rank,
    world_size,
)

Batch = tuple[torch.Tensor, torch.Tensor]


def setup(device_name: str, batch_shards: int, batch_sizes: dict[str, int]) -> None:
    """Join the process group (nccl on CUDA, gloo on CPU) and fix the shard count; raises
    ConfigError when a global batch cannot be cut into equal shards."""
    e = env()
    shards = int(batch_shards) or e.world_size
    if shards % e.world_size:
        raise ConfigError(f"batch_shards={batch_shards} is not a multiple of the world size {e.world_size} "
                          "(each rank takes an equal number of shards)")
    for key, bs in batch_sizes.items():
        if bs % shards:
            raise ConfigError(f"{key}={bs} is not divisible into batch_shards={shards} equal shards "
                              f"(world size {e.world_size}); it is the global batch")
    _STATE["shards"] = shards
    if e.world_size == 1 or torch.distributed.is_initialized():
        return
    use_cuda = device_name in ("cuda", "auto") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(e.local_rank % torch.cuda.device_count())  # device "cuda" = this rank's GPU
    torch.distributed.init_process_group("nccl" if use_cuda else "gloo", rank=e.rank, world_size=e.world_size)


def shutdown() -> None:
    if active():
        torch.distributed.destroy_process_group()


def shards_total() -> int:
    return int(_STATE["shards"])


@contextlib.contextmanager
def shard_count(k: int) -> Iterator[None]:
    """One process computing as one of ``k`` ranks would, one shard at a time (``gmnas bench``
    measures a rank's memory this way); refused under torchrun."""
    if world_size() > 1:
        raise StageError("distributed.shard_count is for one process; the ranks fix the shards")
    old = _STATE["shards"]
    _STATE["shards"] = int(k)
    try:
        yield
    finally:
        _STATE["shards"] = old


def local_shards(batch: Batch) -> list[Batch]:
    """This rank's shards of a global batch (all of them in one process)."""
    n = shards_total()
    if n == 1:
        return [batch]
    k = n // world_size()
    xs, ys = torch.tensor_split(batch[0], n), torch.tensor_split(batch[1], n)
    lo = rank() * k
    return [(xs[i], ys[i]) for i in range(lo, lo + k)]


def local_labels(batch: Batch) -> torch.Tensor:
    """The labels of this rank's shards, in order (for accuracy counts)."""
    parts = local_shards(batch)
    return parts[0][1] if len(parts) == 1 else torch.cat([p[1] for p in parts])


# -- collectives (barrier, agree: infra/ranks.py) ------------------------------------------------
def allreduce_sum_(tensors: Sequence[torch.Tensor]) -> None:
    """Sum ``tensors`` over the ranks in place (one flat message)."""
    if not active() or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    torch.distributed.all_reduce(flat)
    o = 0
    for t in tensors:
        t.copy_(flat[o : o + t.numel()].view_as(t))
        o += t.numel()


def allreduce_mean(tensors: Sequence[torch.Tensor | None], count: int | None = None) -> list[torch.Tensor | None]:
    """Mean over ranks in place (``count``: divide the sum by this instead, e.g. the shard count);
    ``None`` entries (unused parameters, the same on every rank) stay ``None``."""
    present = [t for t in tensors if t is not None]
    allreduce_sum_(present)
    div = count if count is not None else world_size()
    if div != 1:
        for t in present:
            t.div_(div)
    return list(tensors)


def _add(acc: list[torch.Tensor | None] | None, grads: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
    if acc is None:
        return list(grads)
    return [a if g is None else (g if a is None else a + g) for a, g in zip(acc, grads)]


class _ShardBuffers:
    """BatchNorm running statistics over shards: each shard starts from the same statistics and
    the floating ones end as their mean over all shards (what ranks with per-shard statistics
    average to); counters (``num_batches_tracked``) advance once, as on every rank."""

    def __init__(self, net: nn.Module | None, parts: int) -> None:
        self.bufs = list(net.buffers()) if net is not None and shards_total() > 1 else []
        self.floats = [b for b in self.bufs if b.is_floating_point()]
        self.start = [b.detach().clone() for b in self.bufs] if parts > 1 else None
        self.sums: list[torch.Tensor] | None = None

    def before(self, i: int) -> None:
        if i and self.start is not None:
            with torch.no_grad():
                for b, s in zip(self.bufs, self.start):
                    b.copy_(s)

    def after(self) -> None:
        if self.floats:
            now = [b.detach().clone() for b in self.floats]
            self.sums = now if self.sums is None else [a + b for a, b in zip(self.sums, now)]

    def finish(self) -> None:
        if self.floats:
            with torch.no_grad():
                for b, s in zip(self.floats, self.sums):
                    b.copy_(s)
                allreduce_mean(self.floats, count=shards_total())


def shard_grads(loss_of: Callable[[Batch], torch.Tensor], batch: Batch, params: Sequence[torch.Tensor],
                net: nn.Module | None = None, context: Callable[[], contextlib.AbstractContextManager] | None = None,
                ) -> tuple[list[torch.Tensor | None], torch.Tensor]:
    """``torch.autograd.grad(loss_of(batch), params)`` of the global batch's mean shard loss: per
    shard, then averaged over all shards and ranks. Returns (gradients, mean loss, detached).
    ``net``: also average its BatchNorm running statistics (None: the caller restores them).
    ``context``: entered around each forward (autocast). A graph shared by the shards (alpha's
    softmax) is kept until the last shard's gradient."""
    ctx = context or contextlib.nullcontext
    parts = local_shards(batch)
    if len(parts) == 1 and not active():  # one process, one shard: exactly the plain call
        with ctx():
            loss = loss_of(batch)
        return list(torch.autograd.grad(loss, list(params), allow_unused=True)), loss.detach()
    bufs = _ShardBuffers(net, len(parts))
    acc, loss_sum = None, None
    for i, part in enumerate(parts):
        bufs.before(i)
        with ctx():
            loss = loss_of(part)
        acc = _add(acc, torch.autograd.grad(loss, list(params), allow_unused=True,
                                            retain_graph=i < len(parts) - 1))
        loss_sum = loss.detach().float() if loss_sum is None else loss_sum + loss.detach().float()
        bufs.after()
    bufs.finish()
    allreduce_mean([*acc, loss_sum], count=shards_total())
    return acc, loss_sum


def shard_backward(forward: Callable[[Batch], tuple[torch.Tensor, torch.Tensor]], batch: Batch,
                   net: nn.Module, params: Sequence[torch.Tensor],
                   ddp: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``loss.backward()`` of the global batch's mean shard loss into ``.grad`` of ``params``.

    ``forward(shard) -> (loss, logits)``. Returns (mean loss over all shards, this rank's logits in
    shard order), detached. With a DDP wrapper ``ddp`` (retrain), DDP averages the gradients over
    the ranks in the last shard's backward; otherwise they are all-reduced here."""
    parts = local_shards(batch)
    if len(parts) == 1 and not active():
        loss, logits = forward(batch)
        loss.backward()
        return loss.detach(), logits.detach()
    bufs = _ShardBuffers(net, len(parts))
    loss_sum, logits_all = None, []
    for i, part in enumerate(parts):
        bufs.before(i)
        sync = ddp is None or i == len(parts) - 1
        with (contextlib.nullcontext() if sync else ddp.no_sync()):
            loss, logits = forward(part)
            loss.backward()
        loss_sum = loss.detach().float() if loss_sum is None else loss_sum + loss.detach().float()
        logits_all.append(logits.detach())
        bufs.after()
    bufs.finish()
    grads = [p.grad for p in params if p.grad is not None]
    if ddp is not None and active():  # DDP averaged the per-rank sums over the world: divide by k
        k = len(parts)
        if k > 1:
            for g in grads:
                g.div_(k)
        allreduce_mean([loss_sum], count=shards_total())
    else:
        allreduce_mean([*grads, loss_sum], count=shards_total())
    return loss_sum, (logits_all[0] if len(logits_all) == 1 else torch.cat(logits_all))


class ShardTotals:
    """Evaluation sums (loss x n, correct, n) kept per shard of every batch: each rank computes only
    its shards, and the totals, summed over the shards in index order after one all-reduce, are the
    same on any number of ranks (bitwise equal to one process with the same ``batch_shards``)."""

    def __init__(self, device: torch.device) -> None:
        self.acc = torch.zeros(shards_total(), 3, dtype=torch.float64, device=device)

    def add(self, batch: Batch, forward: Callable[[Batch], tuple[torch.Tensor, torch.Tensor]]) -> None:
        """``forward(shard) -> (mean loss, logits)`` on this rank's non-empty shards of ``batch``."""
        n = shards_total()
        k = n // world_size()
        xs, ys = (torch.tensor_split(t, n) for t in batch) if n > 1 else ([batch[0]], [batch[1]])
        for i in range(rank() * k, rank() * k + k):
            y = ys[i]
            if len(y) == 0:
                continue
            loss, logits = forward((xs[i], y))
            self.acc[i, 0] += loss.detach().double() * len(y)
            self.acc[i, 1] += (logits.argmax(1) == y).sum()
            self.acc[i, 2] += len(y)

    def sums(self) -> tuple[float, int, int]:
        """(summed loss x n, correct, n) over all shards of all batches."""
        if active():
            torch.distributed.all_reduce(self.acc)  # other ranks' slots are zeros here: exact
        loss, correct, n = self.acc.sum(0).tolist()
        return loss, int(correct), int(n)


def allreduce_totals(*values: torch.Tensor | float | int) -> list[float]:
    """Per-rank running sums (loss x n, correct, n) summed over ranks, as Python floats."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if active():
        if torch.distributed.get_backend() == "nccl":
            t = t.cuda()
        torch.distributed.all_reduce(t)
    return t.cpu().tolist()
