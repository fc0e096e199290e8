"""NAS-Bench-201 cell space (Dong & Yang 2020) as used by GM-NAS (paper 4.1, docs/method-facts.md).

Ops: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3 (`nor_conv` = ReLU-Conv-BN);
search cells use BN with ``affine=False``; edges in the order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2;
macro: stem, N cells, residual reduction, N cells, residual reduction, N cells, BN-ReLU, pool, FC.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.spaces.base import (
    SPACES,
    Active,
    Arch,
    Mask,
    MixedOp,
    SearchSpace,
    Supernet,
    node_terms,
    weighted_sum,
)

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
            # Search cells: affine=False (docs/method-facts.md) and batch statistics always (our choice: no
            # running statistics averaged over a mixture of paths).
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=affine),
        )

    def forward(self, x: torch.Tensor, x_relu: torch.Tensor | None = None) -> torch.Tensor:
        """``x_relu``: ``relu(x)`` computed already (a cell shares one ReLU per node state)."""
        return self[2](self[1](self[0](x) if x_relu is None else x_relu))


_POOL_CONSTS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


class AvgPool3x3(nn.Module):
    """``avg_pool_3x3``: stride 1, padding 1, zero padding excluded from the count.

    On CPU, a depthwise convolution with a ones kernel divided by the per-pixel window count: the
    same average as ``avg_pool2d(x, 3, 1, 1, count_include_pad=False)``, several times faster
    forward and backward there. On other devices ``avg_pool2d`` itself.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4:
            return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        c, h, w = x.shape[1:]
        key = (c, h, w, x.dtype)
        consts = _POOL_CONSTS.get(key)
        if consts is None:
            ones = torch.ones(1, 1, 3, 3, dtype=x.dtype)
            count = F.conv2d(torch.ones(1, 1, h, w, dtype=x.dtype), ones, padding=1)
            consts = _POOL_CONSTS[key] = (ones.expand(c, 1, 3, 3).contiguous(), count)
        kernel, count = consts
        return F.conv2d(x, kernel, padding=1, groups=c) / count


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def nb201_op(name: str, c: int, affine: bool) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, affine)
    if name == "avg_pool_3x3":
        return AvgPool3x3()
    raise ConfigError(f"space.ops: unknown NAS-Bench-201 op {name!r}; valid: {', '.join(NB201_OPS)}")


class ResidualReduction(nn.Module):
    """NAS-Bench-201's residual block between stages (stride 2, doubles channels)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, affine=True)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, affine=True)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class SearchCell(nn.Module):
    """A cell with ``nodes`` nodes; node i sums edge(j -> i)(node j) over j < i."""

    def __init__(self, c: int, nodes: int, op_names: list[str], affine: bool = False) -> None:
        super().__init__()
        self.nodes = nodes
        self.pairs = [(i, j) for i in range(1, nodes) for j in range(i)]
        self.edges = nn.ModuleList(
            [MixedOp({o: nb201_op(o, c, affine=affine) for o in op_names}, op_names) for _ in self.pairs]
        )
        # per edge and op: a ReLU-Conv-BN, which takes the node state's shared ReLU
        self._pre_relu = [[isinstance(op, ReLUConvBN) for op in mixed.ops] for mixed in self.edges]

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: Active) -> torch.Tensor:
        """Node i = sum over active (edge j->i, op k) of ``weights[e, k] * op_k(node j)``, one fused
        weighted sum per node; ReLU(node j) is computed once for all ReLU-Conv-BN ops reading it."""
        return self.node_states([x], weights, active)[-1]

    def node_states(self, states: list[torch.Tensor], weights: torch.Tensor, active: Active,
                    stop: int | None = None) -> list[torch.Tensor]:
        """``states`` (nodes 0..len-1, computed before) extended with nodes up to ``stop - 1``
        (default: all nodes)."""
        states = list(states)
        relus: list[torch.Tensor | None] = [None] * self.nodes
        n_ops = weights.shape[-1]
        first = len(states)
        e = first * (first - 1) // 2  # edges into nodes 1..first-1 come first
        for i in range(first, self.nodes if stop is None else stop):
            index, ys, only_none, e = node_terms(self.edges, self._pre_relu, states, relus, active, e, i, n_ops)
            if ys:
                s = weighted_sum(weights, index, ys)
            elif only_none is not None:  # `none` zeros (`w * 0` of the other terms adds nothing)
                s = self.edges[only_none[0]].zeros(states[only_none[1]])
            else:
                s = states[0].mul(0.0)
            states.append(s)
        return states


class NB201Supernet(Supernet):
    def __init__(self, space: NB201Space, mask: Mask, c: int | None = None, n: int | None = None,
                 affine: bool = False) -> None:
        super().__init__(space, mask)
        c = space.cfg.C if c is None else c
        n = space.cfg.N if n is None else n
        self.stem = nn.Sequential(nn.Conv2d(space.in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        cells: list[nn.Module] = []
        c_prev = c
        for stage in range(3):
            c_cur = c * 2**stage
            if stage > 0:
                cells.append(ResidualReduction(c_prev, c_cur))
            cells += [SearchCell(c_cur, space.cfg.nodes, space.ops, affine) for _ in range(n)]
            c_prev = c_cur
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, space.num_classes)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: Active | None = None) -> torch.Tensor:
        active = self.enabled if active is None else active
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h, weights, active) if isinstance(cell, SearchCell) else cell(h)
        h = self.pool(self.lastact(h)).flatten(1)
        return self.classifier(h)

    def forward_prefix(self, x: torch.Tensor, weights: torch.Tensor, active: Active,
                       edge: int) -> tuple[torch.Tensor, ...]:
        """Stem and the first cell's nodes before ``edge``'s target node (every cell uses ``edge``)."""
        first = self.cells[0]
        if not isinstance(first, SearchCell):  # N=0: no search cell before the reductions
            return super().forward_prefix(x, weights, active, edge)
        target = first.pairs[edge][0]
        return tuple(first.node_states([self.stem(x)], weights, active, stop=target))

    def forward_suffix(self, states: tuple[torch.Tensor, ...], weights: torch.Tensor, active: Active,
                       edge: int) -> torch.Tensor:
        if not isinstance(self.cells[0], SearchCell):
            return super().forward_suffix(states, weights, active, edge)
        h = self.cells[0].node_states(list(states), weights, active)[-1]
        for cell in self.cells[1:]:
            h = cell(h, weights, active) if isinstance(cell, SearchCell) else cell(h)
        return self.classifier(self.pool(self.lastact(h)).flatten(1))


@SPACES.register("nb201", keys=("C", "N", "nodes"))
class NB201Space(SearchSpace):
    name = "nb201"
    retrain_by_benchmark = True  # NAS-Bench-201's tables hold every cell's trained figures (Dong & Yang 2020)

    @classmethod
    def criteria_table(cls, ops: list[str]) -> str | None:
        """The 4-op space without ``none``: paper Table 1 compares the split criteria there."""
        return None if "none" in ops else "criteria"

    @classmethod
    def experiment_label(cls, cfg: Any) -> str:
        """``nb201``, or ``nb2014`` for the 4-op space without ``none`` (paper Table 1)."""
        return str(cfg.space.name) + ("" if "none" in cfg.space.ops else "4")

    def network_summary(self, retrain_cfg: Any, num_classes: int) -> str:
        layers = int(retrain_cfg.layers)
        return (f"NAS-Bench-201 network: C={retrain_cfg.C}, {layers} layers ({(layers - 2) // 3} cells per stage), "
                f"{num_classes} classes (retrain.C, retrain.layers)")

    def edge_names(self) -> list[str]:
        self.check_ops(NB201_OPS, "NAS-Bench-201")
        n = self.cfg.nodes
        return [f"{i}<-{j}" for i in range(1, n) for j in range(i)]

    def build_supernet(self, mask: Mask) -> NB201Supernet:
        return NB201Supernet(self, mask)

    def shared_parameters(self, net: Supernet, edge: str) -> list[nn.Parameter]:
        """Every cell's parameters on every edge but ``edge``, plus the reductions (docs/method-facts.md)."""
        k = self.edges.index(edge)
        params: list[nn.Parameter] = []
        for cell in net.cells:
            if isinstance(cell, SearchCell):
                for e, mixed in enumerate(cell.edges):
                    if e != k:
                        params += list(mixed.parameters())
            else:
                params += list(cell.parameters())
        return params

    def derive(self, weights: torch.Tensor, mask: Mask) -> Arch:
        """Per edge, the enabled op of largest weight (ties: first in op order)."""
        w = weights.detach().float().cpu().masked_fill(~self.mask_tensor(mask), float("-inf"))
        return {e: self.ops[int(w[i].argmax())] for i, e in enumerate(self.edges)}

    def arch_to_str(self, arch: Arch) -> str:
        n = self.cfg.nodes
        nodes = ["|" + "|".join(f"{arch[f'{i}<-{j}']}~{j}" for j in range(i)) + "|" for i in range(1, n)]
        return "+".join(nodes)

    def str_to_arch(self, text: str) -> Arch:
        """Parse ``|op~0|+|op~0|op~1|+...``; a bad string raises ValueError naming its first bad token."""
        arch: Arch = {}
        nodes = text.strip().split("+")
        if len(nodes) != self.cfg.nodes - 1:
            raise ValueError(f"not a NAS-Bench-201 string: {len(nodes)} node(s) joined by '+', expected "
                             f"{self.cfg.nodes - 1} (like {_EXAMPLE}): {text!r}")
        for i, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
                raise ValueError(f"not a NAS-Bench-201 string: node {i} {node!r} must be enclosed in '|'")
            items = node[1:-1].split("|")
            for item in items:
                op, tilde, j = item.partition("~")
                if op not in NB201_OPS:
                    raise ValueError(f"not a NAS-Bench-201 string: unknown op {op!r} in token {item!r} (node {i}); "
                                     f"valid: {', '.join(NB201_OPS)}")
                if not tilde or not (j.isascii() and j.isdigit()) or int(j) >= i:  # "²".isdigit() is True
                    raise ValueError(f"not a NAS-Bench-201 string: token {item!r} (node {i}) needs an input "
                                     f"~0..~{i - 1}")
                if f"{i}<-{int(j)}" in arch:
                    raise ValueError(f"not a NAS-Bench-201 string: token {item!r} repeats input {j} of node {i}")
                arch[f"{i}<-{int(j)}"] = op
            if len(items) != i:
                raise ValueError(f"not a NAS-Bench-201 string: node {i} {node!r} has {len(items)} input(s), "
                                 f"needs {i}")
        return arch

    def sample_arch(self, mask: Mask, gen: torch.Generator) -> Arch:
        return {e: mask[e][int(torch.randint(len(mask[e]), (1,), generator=gen))] for e in self.edges}

    def build_network(self, arch: Arch, retrain_cfg: Any, num_classes: int, in_channels: int) -> nn.Module:
        """The discrete NAS-Bench-201 network: the supernet restricted to ``arch``'s ops, with affine
        BN and running statistics (NB201's evaluation cells), ``retrain.C`` channels and
        ``retrain.layers = 3N + 2`` (17: N=5, the benchmark's network)."""
        layers = int(retrain_cfg.layers)
        if layers < 2 or (layers - 2) % 3:
            raise ConfigError(f"retrain.layers={layers}: NAS-Bench-201 networks have 3N + 2 layers (17: N=5)")
        if num_classes != self.num_classes or in_channels != self.in_channels:
            space = type(self)(self.cfg, num_classes, in_channels)
        else:
            space = self
        return NB201Network(space, arch, int(retrain_cfg.C), (layers - 2) // 3)


class NB201Network(nn.Module):
    """A discrete NAS-Bench-201 architecture; ``forward(x)`` returns logits."""

    def __init__(self, space: NB201Space, arch: Arch, c: int, n: int) -> None:
        super().__init__()
        self.net = NB201Supernet(space, {e: [arch[e]] for e in space.edges}, c=c, n=n, affine=True)
        weights, active = space.arch_weights(arch)
        for cell in self.net.cells:  # keep only the chosen op of every edge (no unused parameters)
            if isinstance(cell, SearchCell):
                for mixed, keep in zip(cell.edges, active):
                    for k in range(len(mixed.ops)):
                        if k not in keep:
                            mixed.ops[k] = Zero()
        self.register_buffer("weights", weights, persistent=False)
        self.active = active

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.weights, self.active)
