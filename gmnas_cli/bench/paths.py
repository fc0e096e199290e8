"""``bench.paths=true``: each fast path against its plain twin, same inputs, one run.

* ``search_step_paths``: the search step with every cell node's edges grouped (one computation per
  node and op, ``spaces/darts/grouped.py``) and edge by edge; ``grouping_ratio`` = per-edge / grouped.
  Only for supernets with grouped cells (DARTS space); the default picks by size
  (``grouped.GROUP_MAX_ELEMENTS``).
* ``gm_edge_minibatch_paths``: one edge scored on one minibatch with each way of computing its ops'
  gradients (``criterion.batched_ops``: off, vmap, channels where the space has op copies);
  ``op_batching_ratio`` = off / the fastest other.

Timings alternate between the paths (ABBA) after one untimed run each; medians of ``bench.steps``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch

from gmnas_cli.criteria.gm.fast import fast_op_gradients
from gmnas_cli.criteria.gm.scoring import gm_minibatches
from gmnas_cli.spaces.darts.grouped import edge_grouping


def _alternate(fns: dict[str, Callable[[], Any]], n: int, timed: Callable[[Callable[[], Any]], float]
               ) -> dict[str, float]:
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for i in range(n):
        for k in names if i % 2 == 0 else names[::-1]:
            times[k].append(timed(fns[k]))
    return {k: statistics.median(v) for k, v in times.items()}


def has_grouped_cells(net: torch.nn.Module) -> bool:
    return any(hasattr(m, "_grouped") for m in net.modules())


def grouping_times(step: Callable[[], None], n: int, timed: Callable[[Callable[[], Any]], float]) -> dict[str, float]:
    """Median search-step seconds with edges grouped and edge by edge."""

    def with_grouping(enabled: bool) -> Callable[[], None]:
        def run() -> None:
            with edge_grouping(enabled):
                step()
        return run

    return _alternate({"grouped": with_grouping(True), "per_edge": with_grouping(False)}, n, timed)


def op_batching_times(ctx: Any, n: int, timed: Callable[[Callable[[], Any]], float]) -> dict[str, float]:
    """Median seconds of one edge-minibatch of GM scoring per ``criterion.batched_ops`` mode."""

    edge = ctx.candidate_edges()[0]
    ops = ctx.ops_of(edge)
    (index, batch), = list(gm_minibatches(ctx, 1))
    modes = ["off", "vmap"] + (["channels"] if ctx.trainer.net.supports_copies() else [])
    fns = {m: (lambda m=m: fast_op_gradients(ctx, edge, ops, batch, index, batched=m)) for m in modes}
    return _alternate(fns, n, timed)
