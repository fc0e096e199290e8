"""The search-space interface (docs/design.md) and the masked supernet base.

An op mask maps each edge name to the list of its enabled op names. Architecture weights are
one dense tensor ``[num_edges, num_ops]`` over the space's flat edge list; disabled ops have
weight zero there and are never computed (``Supernet.forward`` only runs active ops).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from gmnas_cli.config.schema import SpaceConfig
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.registry import Registry

Mask = dict[str, list[str]]
Arch = dict[str, str]  # edge name -> chosen op name (only the edges an architecture keeps)
Active = Sequence[Sequence[int]]  # per edge, the op indices to compute in this forward pass


class _WeightedSum(torch.autograd.Function):
    """``sum_t w.flatten()[index[t]] * ys[t]``: one output buffer, fused multiply-adds.

    Backward: ``g * w_t`` to each term and ``<g, y_t>`` (a dot product, no product tensor) to the
    weights; the weights get a gradient of their own shape (zero off ``index``). Mathematically
    the same as ``w_0 * y_0 + w_1 * y_1 + ...``; only float rounding can differ.
    """

    # forward without ctx + setup_context: usable under torch.func (vmap over ops in GM scoring,
    # gmnas_cli/criteria/gm/fast.py); the vmap rule is generated from these same formulas.
    generate_vmap_rule = True

    @staticmethod
    def forward(w: torch.Tensor, index: tuple[int, ...], *ys: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        flat = w.reshape(-1)
        out = ys[0] * flat[index[0]]
        dtype = out.dtype
        for y in ys[1:]:
            dtype = torch.promote_types(dtype, y.dtype)
        if dtype != out.dtype:  # mixed precision terms: the sum has the promoted type, as before
            out = out.to(dtype)
        batched = torch._C._functorch.is_functorch_wrapped_tensor(out)  # under vmap: no in-place rule
        for t in range(1, len(ys)):
            out = torch.addcmul(out, ys[t], flat[index[t]]) if batched else out.addcmul_(ys[t], flat[index[t]])
        return out

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: torch.Tensor) -> None:  # type: ignore[override]
        w, index, *ys = inputs
        ctx.index = index
        ctx.save_for_backward(w, *ys)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        w, *ys = ctx.saved_tensors
        flat = w.reshape(-1)
        grads_y = [g * flat[i] if ctx.needs_input_grad[t + 2] else None for t, i in enumerate(ctx.index)]
        grad_w = None
        if ctx.needs_input_grad[0]:
            dots = torch.stack([_dot(g, y) for y in ys]).to(w.dtype)
            grad_w = torch.zeros_like(flat).index_put((_index_tensor(ctx.index, w.device),), dots,
                                                      accumulate=True).view_as(w)
        return (grad_w, None, *grads_y)


_INDEX_CACHE: dict[tuple[tuple[int, ...], torch.device], torch.Tensor] = {}


def _index_tensor(index: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``index`` as a cached device tensor (no host-to-device copy per backward on CUDA)."""
    key = (index, device)
    t = _INDEX_CACHE.get(key)
    if t is None:
        t = _INDEX_CACHE[key] = torch.tensor(index, dtype=torch.long, device=device)
    return t


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum()`` without the product tensor where a flat dot product applies."""
    if torch._C._functorch.is_functorch_wrapped_tensor(a) or torch._C._functorch.is_functorch_wrapped_tensor(b):
        return (a * b).sum()  # under vmap (criteria/gm/fast.py): strides are per slice
    if a.device.type == "cpu" and a.dtype == b.dtype == torch.float32 and a.stride() == b.stride():
        if a.is_contiguous():
            return torch.dot(a.view(-1), b.view(-1))
        if a.dim() == 4 and a.is_contiguous(memory_format=torch.channels_last):  # NHWC: the same sum
            return torch.dot(a.permute(0, 2, 3, 1).reshape(-1), b.permute(0, 2, 3, 1).reshape(-1))
    return (a * b).sum()


def weighted_sum(w: torch.Tensor, index: Sequence[int], ys: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_t w.flatten()[index[t]] * ys[t]`` (differentiable in ``w`` and every ``ys[t]``)."""
    return _WeightedSum.apply(w, tuple(index), *ys)


def node_terms(edges: Sequence[MixedOp], pre_relu: Sequence[Sequence[bool]], states: Sequence[torch.Tensor],
               relus: list[torch.Tensor | None], active: Sequence[Sequence[int]], e: int, n_inputs: int,
               n_ops: int) -> tuple[list[int], list[torch.Tensor], tuple[int, int] | None, int]:
    """The weighted-sum terms of one cell node fed by edges ``e .. e + n_inputs - 1`` (input j =
    ``states[j]``): flat weight indices, op outputs, the first active edge whose only active op is
    ``none`` (as (edge, input)), and the next edge index. ReLU(state j) is computed once, into
    ``relus[j]``, for every op that starts with a ReLU (NB201 and DARTS cells share this)."""
    index: list[int] = []
    ys: list[torch.Tensor] = []
    zero_edge: tuple[int, int] | None = None
    for j in range(n_inputs):
        if active[e]:
            mixed, first_relu, h = edges[e], pre_relu[e], states[j]
            ks = mixed.computed(active[e])
            if not ks and zero_edge is None:
                zero_edge = (e, j)
            for k in ks:
                if first_relu[k]:
                    if relus[j] is None:
                        relus[j] = torch.relu(h)
                    ys.append(mixed.ops[k](h, relus[j]))
                else:
                    ys.append(mixed.ops[k](h))
                index.append(e * n_ops + k)
        e += 1
    return index, ys, zero_edge, e


class MixedOp(nn.Module):
    """All candidate ops of one edge; computes ``sum_k w[k] * op_k(x)`` over active ops only."""

    def __init__(self, ops: dict[str, nn.Module], op_names: Sequence[str]) -> None:
        super().__init__()
        self.op_names = list(op_names)
        self.ops = nn.ModuleList([ops[name] for name in op_names])
        self._zero = [name == "none" for name in op_names]
        self._none = op_names.index("none") if "none" in op_names else None

    def computed(self, active: Sequence[int]) -> list[int]:
        """The active ops that are run: all but `none` (``w * 0`` adds nothing)."""
        return [k for k in active if not self._zero[k]]

    def zeros(self, x: torch.Tensor) -> torch.Tensor:
        """The output when only `none` is active: its zeros have the right shape (stride)."""
        if self._none is None:
            raise RuntimeError("MixedOp called with no active op")
        return self.ops[self._none](x)

    def forward(self, x: torch.Tensor, w: torch.Tensor, active: Sequence[int]) -> torch.Tensor:
        ks = self.computed(active)
        if not ks:
            return self.zeros(x)
        ops = self.ops
        return weighted_sum(w, ks, [ops[k](x) for k in ks])


class Supernet(nn.Module):
    """A weight-sharing supernet restricted to an op mask."""

    def __init__(self, space: SearchSpace, mask: Mask) -> None:
        super().__init__()
        self.space = space
        self.set_mask(mask)

    def set_mask(self, mask: Mask) -> None:
        space = self.space
        self.mask = {e: list(mask[e]) for e in space.edges}
        self.enabled = [[space.ops.index(o) for o in space.ops if o in self.mask[e]] for e in space.edges]
        self.register_buffer("mask_tensor", space.mask_tensor(self.mask), persistent=False)

    @abstractmethod
    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: Active | None = None) -> torch.Tensor:
        ...

    # -- forward in two parts (GM scoring reuses the part before the scored edge: criteria/gm/fast.py) --
    def forward_prefix(self, x: torch.Tensor, weights: torch.Tensor, active: Active,
                       edge: int) -> tuple[torch.Tensor, ...]:
        """The states computed before edge ``edge`` is first used; they do not depend on that
        edge's weights or active ops. Default: nothing before (the input itself)."""
        return (x,)

    def forward_suffix(self, states: tuple[torch.Tensor, ...], weights: torch.Tensor, active: Active,
                       edge: int) -> torch.Tensor:
        """The rest of ``forward`` from ``forward_prefix``'s states: ``forward_suffix(forward_prefix(x))
        == forward(x)``."""
        return self.forward(states[0], weights, active)

    def supports_copies(self) -> bool:
        """Whether ``forward_suffix_copies`` exists: GM scores all of an edge's ops in one pass with
        the copies side by side in the channels (``criterion.batched_ops=channels``, criteria/gm/fast.py)."""
        return False

    def forward_suffix_copies(self, states: tuple[torch.Tensor, ...], weights: torch.Tensor, active: Active,
                              edge: int, copies: Any, ops: list[int], scored_weights: torch.Tensor | None
                              ) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no copies-side-by-side suffix")


@dataclasses.dataclass(frozen=True)
class NaturalInput:
    """The input a space was designed for: what ``gmnas arch`` measures when no ``dataset=`` is named."""

    image_size: int
    in_channels: int
    num_classes: int


class SearchSpace(ABC):
    """Edges and op names, a supernet for a mask, shared parameters, derivation and formats.

    The pipeline asks a space only through the attributes and methods declared here (docs/design.md,
    "The plugin contract"); each says when it is asked and what the default is.
    """

    name: str = ""
    input_size: int = 224  # input resolution (dataset.image_size) for cost models such as MAC counts
    op_copies: bool = False  # its supernets have forward_suffix_copies (criterion.batched_ops=channels)
    # The algorithms that can train its supernets (None: every algorithm that accepts it, ``Algorithm.spaces``).
    algorithms: tuple[str, ...] | None = None
    # ``gmnas report report.table=auto``: the table of experiments that all searched this space.
    report_table: str = "nb201"

    @classmethod
    def criteria_table(cls, ops: list[str]) -> str | None:
        """``gmnas report report.table=auto``: the table that compares split criteria on this space with
        ``ops`` when the paper has one (NB201's 4-op variant: Table 1), else None. Asked per report."""
        return None
    # ``gmnas arch`` without ``dataset=``: the input its figures are given at (default: CIFAR-10's).
    natural_input: NaturalInput = NaturalInput(32, 3, 10)
    # ``gmnas retrain`` with ``benchmark=`` set: the benchmark's figures replace training from scratch
    # (NAS-Bench-201's tables, Dong & Yang 2020). False: retrain, whatever the benchmark.
    retrain_by_benchmark: bool = False

    def __init__(self, cfg: SpaceConfig, num_classes: int, in_channels: int) -> None:
        self.cfg = cfg
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.ops: list[str] = list(cfg.ops)
        if not self.ops:
            raise ConfigError("space.ops must list at least one op")
        self.edges: list[str] = self.edge_names()

    # ``retrain.*`` keys only some spaces' ``build_network`` reads; refused on the others
    # (pipeline/validate.py). Asked at start-up.
    retrain_keys: tuple[str, ...] = ()

    # -- structure --------------------------------------------------------------------------
    def check_ops(self, valid: list[str], space_label: str) -> None:
        """Refuse ``space.ops`` that this space does not define (one-line ConfigError)."""
        bad = [o for o in self.cfg.ops if o not in valid]
        if bad:
            raise ConfigError(f"space.ops: unknown {space_label} op {bad[0]!r}; valid: {', '.join(valid)}")

    @abstractmethod
    def edge_names(self) -> list[str]:
        """The flat list of edges whose rows the architecture weights have."""

    def full_mask(self) -> Mask:
        return {e: list(self.ops) for e in self.edges}

    def splittable_edges(self) -> list[str]:
        """Edges a split may choose (DARTS: normal cells only by default)."""
        return list(self.edges)

    def splittable_ops(self, mask: Mask, edge: str) -> list[str]:
        """Enabled ops of ``edge`` that splitting partitions (DARTS excludes `none`)."""
        return [o for o in mask[edge] if o not in self.cfg.unsplittable_ops]

    def mask_tensor(self, mask: Mask) -> torch.Tensor:
        return torch.tensor([[o in mask[e] for o in self.ops] for e in self.edges], dtype=torch.bool)

    @abstractmethod
    def build_supernet(self, mask: Mask) -> Supernet:
        ...

    @abstractmethod
    def shared_parameters(self, net: Supernet, edge: str) -> list[nn.Parameter]:
        """Parameters whose gradients GM compares when ops of ``edge`` are scored (docs/method-facts.md)."""

    # -- architectures ----------------------------------------------------------------------
    @abstractmethod
    def derive(self, weights: torch.Tensor, mask: Mask) -> Arch:
        """The discrete architecture of the strongest enabled ops (derived argmax)."""

    @abstractmethod
    def arch_to_str(self, arch: Arch) -> str:
        ...

    @abstractmethod
    def str_to_arch(self, text: str) -> Arch:
        ...

    @abstractmethod
    def sample_arch(self, mask: Mask, gen: torch.Generator) -> Arch:
        """A uniformly random architecture inside ``mask`` (RSPS, ranking correlation)."""

    def arch_weights(self, arch: Arch) -> tuple[torch.Tensor, list[list[int]]]:
        """One-hot weights and active op lists that evaluate ``arch`` in a supernet."""
        w = torch.zeros(len(self.edges), len(self.ops))
        active: list[list[int]] = []
        for i, e in enumerate(self.edges):
            if e in arch:
                k = self.ops.index(arch[e])
                w[i, k] = 1.0
                active.append([k])
            else:
                active.append([])
        return w, active

    def arch_in_mask(self, arch: Arch, mask: Mask) -> bool:
        return all(op in mask[e] for e, op in arch.items())

    def arch_files(self, arch: Arch) -> dict[str, Any]:
        """Extra JSON files describing ``arch``, written next to search results (MobileNet: net.config)."""
        return {}

    def arch_metrics(self, arch: Arch) -> dict[str, float]:
        """Cost figures of ``arch`` recorded with search and retrain results (MobileNet: params, MFLOPs)."""
        return {}

    @classmethod
    def experiment_label(cls, cfg: Any) -> str:
        """The space's part of a default experiment name (``ExperimentDir``, when ``name=`` is empty)."""
        return str(cfg.space.name)

    # -- cost models (algo=proxyless's hardware regulariser) --------------------------------
    def op_macs(self) -> torch.Tensor:
        """MACs of each op on each edge, ``[num_edges, num_ops]``; asked by ``algo=proxyless`` with
        ``algo.target=flops``. Default: the space has no per-op cost model (a ConfigError)."""
        raise ConfigError(f"space {self.name!r} has no per-op MAC model (algo.target=flops needs one)")

    def fixed_macs(self) -> int:
        """MACs outside the searchable edges (with ``op_macs``)."""
        raise ConfigError(f"space {self.name!r} has no per-op MAC model (algo.target=flops needs one)")

    # -- evaluation -------------------------------------------------------------------------
    def network_summary(self, retrain_cfg: Any, num_classes: int) -> str:
        """``gmnas arch``'s "network" row: the stand-alone network ``build_network`` makes, in words."""
        return f"{self.name} network, {num_classes} classes"

    def set_drop_path(self, net: nn.Module, prob: float) -> None:
        """Called by the retrain loop before every epoch with that epoch's drop-path probability
        (``retrain.drop_path``, linearly increased, DARTS train.py). Default: no drop path."""
        return None

    def build_network(self, arch: Arch, retrain_cfg: Any, num_classes: int, in_channels: int) -> nn.Module:
        """The stand-alone network of ``arch`` for retraining (``retrain`` stage, successive halving).

        Its ``forward(x)`` returns logits, or ``(logits, aux_logits)`` in training mode when it has
        an auxiliary head.
        """
        raise NotImplementedError(f"space {self.name!r} cannot build a stand-alone network for retraining "
                                  f"(it has no build_network); use a benchmark lookup or another space")


SPACES: Registry[type[SearchSpace]] = Registry("space", catalog="gmnas_cli.spaces.catalog")


def build_space(cfg: SpaceConfig, num_classes: int, in_channels: int, input_size: int | None = None) -> SearchSpace:
    space = SPACES[cfg.name](cfg, num_classes, in_channels)
    if input_size is not None:
        space.input_size = int(input_size)
    return space
