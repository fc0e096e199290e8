"""``gmnas bench``: one leaf split's GM scoring, ours against the official scoring loop.

* **Official reference**: xautodl's NAS-Bench-201 ``DARTS-V1`` supernet (the
  network of the official GM-NAS NB201 code, same step time) driven by the official per-edge
  scoring loop on each minibatch: per op, the scored edge's weight row one-hot on that op and the
  other rows the softmax of alpha, one full forward (every op of every edge computed, weighted),
  one full backward (every parameter's gradient), the shared gradients flattened (every cell's
  edges but the scored one, plus the reduction blocks: docs/method-facts.md); then the minibatch's
  ``1 - cos`` distance matrix. A leaf split averages ``criterion.batches`` minibatches per edge.
* **Ours**: ``gm_fast.op_gradients`` (shared prefix once; ``criterion.batched_ops``) and the
  same distance matrix, on the same minibatches; with ``criterion.early_stop`` the split stops
  after the minibatches that the early-stop split of the proxy supernet used (``bench.gm_*``,
  which also checks that the decision is the same as with all minibatches).

Per edge-minibatch times are medians over ``bench.gm_probe_batches`` minibatches (alternating
ours/official); the split times are extrapolated from them: minibatches x candidate edges.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from gmnas_cli.criteria.gm.scoring import op_gradients
from gmnas_cli.infra.errors import ConfigError

Batch = tuple[torch.Tensor, torch.Tensor]


def cosine_distances(rows: torch.Tensor) -> torch.Tensor:
    """``1 - cos`` between the rows (the per-minibatch distance matrix of the official code)."""
    normed = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return 1.0 - normed @ normed.T


def xautodl_net(cfg: DictConfig, device: torch.device, num_classes: int) -> torch.nn.Module:
    """xautodl's NB201 DARTS-V1 supernet for ``cfg.space`` (affine=False, no running stats)."""
    if cfg.space.name != "nb201":
        raise ConfigError(f"bench.reference=xautodl compares NAS-Bench-201 supernets; space={cfg.space.name}")
    try:
        from xautodl.config_utils import dict2config
        from xautodl.models import get_cell_based_tiny_net
    except ImportError as err:
        raise ConfigError("bench.reference=xautodl needs the xautodl package: "
                          "pip install --no-deps xautodl==1.0.0 (`make bench` does)") from err
    model_cfg = dict2config({"name": "DARTS-V1", "C": int(cfg.space.C), "N": int(cfg.space.N),
                             "max_nodes": int(cfg.space.nodes), "num_classes": num_classes,
                             "space": list(cfg.space.ops), "affine": False, "track_running_stats": False}, None)
    return get_cell_based_tiny_net(model_cfg).to(device).train()  # as published: NCHW


def _xautodl_forward(net: torch.nn.Module, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``TinyNetworkDarts.forward`` with given edge weights instead of ``softmax(alpha)``."""
    from xautodl.models.cell_searchs.search_cells import NAS201SearchCell

    h = net.stem(x)
    for cell in net.cells:
        h = cell(h, weights) if isinstance(cell, NAS201SearchCell) else cell(h)
    h = net.lastact(h)
    return net.classifier(net.global_pooling(h).flatten(1))


def official_scorer(net: torch.nn.Module, edge: str) -> Callable[[Batch], torch.Tensor]:
    """The official scoring of ``edge`` on one minibatch (module docstring); returns distances."""
    from xautodl.models.cell_searchs.search_cells import NAS201SearchCell

    e = net.edge2index[edge]
    shared: list[torch.nn.Parameter] = []
    for cell in net.cells:
        if isinstance(cell, NAS201SearchCell):
            for key in cell.edge_keys:
                if key != edge:
                    shared += list(cell.edges[key].parameters())
        else:
            shared += list(cell.parameters())
    n_ops = net.arch_parameters.shape[1]

    def score(batch: Batch) -> torch.Tensor:
        x, y = batch
        rows = []
        for k in range(n_ops):
            alphas = F.softmax(net.arch_parameters, dim=-1)
            one_hot = torch.zeros_like(alphas[e])
            one_hot[k] = 1.0
            weights = torch.cat([alphas[:e], one_hot.unsqueeze(0), alphas[e + 1:]])
            net.zero_grad()
            F.cross_entropy(_xautodl_forward(net, x, weights), y).backward()
            rows.append(torch.cat([p.grad.reshape(-1) for p in shared]))
        return cosine_distances(torch.stack(rows))

    return score


def ours_scorer(ctx: Any, edge: str) -> Callable[[int, Batch], torch.Tensor]:
    ops = ctx.ops_of(edge)

    def score(index: int, batch: Batch) -> torch.Tensor:
        return cosine_distances(op_gradients(ctx, edge, ops, batch, index))

    return score


def compare_split(ctx: Any, ref_net: torch.nn.Module, batches: list[tuple[int, Batch]],
                  timed: Callable[[Callable[[], Any]], float]) -> dict[str, float]:
    """Median seconds per edge-minibatch of ours and the official loop (first candidate edge),
    alternating in ABBA order over ``batches``."""
    edge = ctx.candidate_edges()[0]
    ours, official = ours_scorer(ctx, edge), official_scorer(ref_net, edge)
    t: dict[str, list[float]] = {"ours": [], "official": []}
    ours(*batches[0])  # warm-up (vmap tracing, oneDNN primitives)
    official(batches[0][1])
    for i, (index, batch) in enumerate(batches):
        order = ("ours", "official") if i % 2 == 0 else ("official", "ours")
        for name in order:
            fn = ((lambda i=index, b=batch: ours(i, b)) if name == "ours"
                  else (lambda b=batch: official(b)))
            t[name].append(timed(fn))
    return {k: statistics.median(v) for k, v in t.items()}
