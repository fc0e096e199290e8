"""One op type of several edges of a cell node as ONE grouped computation (DARTS search cells).

The edges that feed a DARTS node carry the same candidate ops with their own weights. Op ``k`` of
``G`` edges is computed at once on the edges' inputs concatenated along channels: a depthwise
convolution of ``C`` channels per edge becomes one of ``G * C`` channels, a pointwise one a
convolution with ``G`` groups, the weights the edges' weights concatenated (each edge still owns
and trains its own parameters: autograd splits the gradient back); BN without affine parameters or
running statistics (DARTS search cells) and pools act per channel, so they apply to the whole
group unchanged. The result is the same function (float rounding aside), with about one module
call per node and op instead of one per edge and op: at small sizes a CPU step is bound by the
per-call cost (tens of microseconds per oneDNN convolution, almost independent of the channel
count), so this makes the DARTS-space supernet several times faster there (docs/performance.md).

Which modules group: ``nn.Sequential`` chains of ``nn.ReLU``, bias-free zero-padded ``nn.Conv2d``,
``nn.BatchNorm2d`` without affine parameters and running statistics, ``nn.MaxPool2d``/``nn.AvgPool2d``,
the identity, and ``FactorizedReduce``. Anything else runs edge by edge (``groupable``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from gmnas_cli.spaces.base import MixedOp
from gmnas_cli.spaces.copies import ONE, Copies
from gmnas_cli.spaces.darts.ops import FactorizedReduce, Identity

# Group a node's edges while one edge's input has at most this many elements: below it a CPU step
# is bound by the per-call cost and grouping wins; above it oneDNN's grouped pointwise convolution
# (few channels per group) is slower than separate ones (docs/performance.md, `gmnas bench`).
GROUP_MAX_ELEMENTS = 1 << 16  # measured: break-even at 64x16x8x8 (C=16, batch 64, 8x8)


@contextmanager
def edge_grouping(enabled: bool) -> Iterator[None]:
    """Group every node's edges (``True``) or none (``False``) inside the block, whatever the size
    (``gmnas bench bench.paths=true`` times both; copies passes always group)."""
    global GROUP_MAX_ELEMENTS
    before = GROUP_MAX_ELEMENTS
    GROUP_MAX_ELEMENTS = 1 << 62 if enabled else -1
    try:
        yield
    finally:
        GROUP_MAX_ELEMENTS = before


def groupable(module: nn.Module) -> bool:
    """Whether ``module`` (one edge's op) can run grouped with the same op of other edges."""
    if isinstance(module, FactorizedReduce):
        return groupable(module.conv_1) and groupable(module.conv_2) and groupable(module.bn)
    if isinstance(module, nn.Sequential):
        return all(groupable(m) for m in module)
    if isinstance(module, nn.Conv2d):
        return module.bias is None and module.padding_mode == "zeros" and not isinstance(module.padding, str)
    if isinstance(module, nn.BatchNorm2d):
        return not module.affine and not module.track_running_stats
    return isinstance(module, (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, Identity))


def grouped_forward(modules: Sequence[nn.Module], x: torch.Tensor, skip_first_relu: bool = False,
                    copies: Copies = ONE) -> torch.Tensor:
    """``cat([m(x_m) for m, x_m in zip(modules, x.chunk(len(modules), 1))], 1)`` in one pass.

    ``modules``: the same op (equal hyper-parameters, ``groupable``) of ``G`` edges; ``x``: their
    inputs concatenated along channels, in the same order (with ``copies``: each edge's input
    holds its copies side by side). ``skip_first_relu``: ``x`` already went through the op's
    leading ReLU (a cell shares one ReLU per node state)."""
    first = modules[0]
    if isinstance(first, nn.Sequential):
        layers = list(zip(*modules))
        if skip_first_relu:
            assert isinstance(first[0], nn.ReLU)
            layers = layers[1:]
        for group in layers:
            x = grouped_forward(group, x, copies=copies)
        return x
    if isinstance(first, nn.ReLU):
        return torch.relu(x)
    if isinstance(first, nn.Conv2d):
        ws = [copies.weight(m.weight) for m in modules]
        w = torch.cat(ws) if len(ws) > 1 else ws[0]
        (ch, cw), padding = _live_taps(tuple(x.shape[-2:]), first)
        if ch or cw:  # taps that only ever read the zero padding: dropped (they add exact zeros)
            k_h, k_w = w.shape[-2:]
            w = w[:, :, ch : k_h - ch, cw : k_w - cw]
        return F.conv2d(x, w, None, first.stride, padding, first.dilation, first.groups * len(modules) * copies.r)
    if isinstance(first, nn.BatchNorm2d):  # batch statistics per channel (no affine, no running stats)
        return F.batch_norm(x, None, None, None, None, True, 0.0, first.eps)
    if isinstance(first, FactorizedReduce):
        return _factorized_reduce(modules, x, skip_first_relu, copies)
    if isinstance(first, Identity):
        return x
    return first(x)  # pools: per channel, the same hyper-parameters on every edge


_TAPS: dict[tuple, tuple[tuple[int, int], tuple[int, int]]] = {}


def _live_taps(size: tuple[int, int], conv: nn.Conv2d) -> tuple[tuple[int, int], tuple[int, int]]:
    """Per spatial dimension, how many kernel taps to drop on each side (symmetrically) because
    every output position reads zero padding through them, and the padding left: on small inputs
    (a 5x5 or dilated kernel on a 2x2 or 4x4 map) the dropped taps are most of the kernel, so the
    convolution and its backward do much less work for the same result (weight gradient of a
    dropped tap: exactly 0, as the full kernel gives)."""
    key = (size, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
    hit = _TAPS.get(key)
    if hit is None:
        crop, pad = [], []
        for n, k, s, p, d in zip(size, conv.kernel_size, conv.stride, conv.padding, conv.dilation):
            n_out = (n + 2 * p - d * (k - 1) - 1) // s + 1
            live = [i for i in range(k) if any(0 <= o * s + i * d - p < n for o in range(n_out))]
            m = min(live[0], k - 1 - live[-1]) if live else 0
            if p - m * d < 0:
                m = 0
            crop.append(m)
            pad.append(p - m * d)
        hit = _TAPS[key] = ((crop[0], crop[1]), (pad[0], pad[1]))
    return hit


def _factorized_reduce(modules: Sequence[FactorizedReduce], x: torch.Tensor, relu_done: bool,
                       copies: Copies) -> torch.Tensor:
    """``FactorizedReduce.forward`` of ``G`` edges: each edge's output is its two halves
    ``[conv_1(x), conv_2(shifted x)]``, so the grouped halves are interleaved per edge (and copy)."""
    if not relu_done:
        x = torch.relu(x)
    h, w = x.shape[-2:]
    shifted = F.pad(x[:, :, 1:, 1:], (0, w % 2, 0, h % 2))  # as FactorizedReduce (odd sizes)
    a = grouped_forward([m.conv_1 for m in modules], x, copies=copies)
    b = grouped_forward([m.conv_2 for m in modules], shifted, copies=copies)
    n, half, ho, wo = a.shape
    g = len(modules) * copies.r
    y = torch.stack([a.view(n, g, half // g, ho, wo), b.view(n, g, half // g, ho, wo)], dim=2)
    y = y.view(n, 2 * half, ho, wo)
    if a.is_contiguous(memory_format=torch.channels_last) and not torch._C._functorch.is_functorch_wrapped_tensor(y):
        y = y.contiguous(memory_format=torch.channels_last)  # (not under vmap: it keeps no layout)
    return grouped_forward([m.bn for m in modules], y)


def grouped_node_terms(edges: Sequence[MixedOp], pre_relu: Sequence[Sequence[bool]],
                       grouped_ok: Sequence[Sequence[bool]], strides: Sequence[int],
                       states: Sequence[torch.Tensor], active: Sequence[Sequence[int]], e: int, n_inputs: int,
                       n_ops: int, copies: Copies = ONE
                       ) -> tuple[list[int], list[torch.Tensor], tuple[int, int] | None, int]:
    """``base.node_terms`` (same contract and terms) with op ``k`` of all edges of the node that
    have the same stride computed as one group (``grouped_forward``); only active ops are run.

    ``grouped_ok[e][k]``: op k of edge e is ``groupable``; ``strides[e]``: the edge's stride (the
    edges of a reduction cell's inputs have stride 2, those between its nodes stride 1); with
    ``copies``, every state holds the copies side by side and each op runs on all of them."""
    groups: dict[tuple[int, int], list[int]] = {}  # (op, stride) -> inputs j, in input order
    singles: list[tuple[int, int]] = []
    zero_edge: tuple[int, int] | None = None
    group = copies.r > 1 or states[n_inputs - 1].numel() <= GROUP_MAX_ELEMENTS
    for j in range(n_inputs):
        if not active[e + j]:
            continue
        ks = edges[e + j].computed(active[e + j])
        if not ks and zero_edge is None:
            zero_edge = (e + j, j)
        for k in ks:
            if group and grouped_ok[e + j][k]:
                groups.setdefault((k, strides[e + j]), []).append(j)
            else:
                singles.append((j, k))
    index: list[int] = []
    ys: list[torch.Tensor] = []
    inputs: dict[tuple[tuple[int, ...], bool], torch.Tensor] = {}  # (inputs, after ReLU) -> concatenation

    def group_input(js: tuple[int, ...], relu: bool) -> torch.Tensor:
        x = inputs.get((js, relu))
        if x is None:
            if relu:
                x = torch.relu(group_input(js, False))
            else:
                x = states[js[0]] if len(js) == 1 else torch.cat([states[j] for j in js], dim=1)
            inputs[(js, relu)] = x
        return x

    for (k, _), js in groups.items():
        mods = [edges[e + j].ops[k] for j in js]
        if isinstance(mods[0], Identity):  # skip_connect: the states themselves
            ys += [states[j] for j in js]
        else:
            relu = pre_relu[e + js[0]][k]
            out = grouped_forward(mods, group_input(tuple(js), relu), skip_first_relu=relu, copies=copies)
            ys += list(out.chunk(len(js), dim=1)) if len(js) > 1 else [out]
        index += [(e + j) * n_ops + k for j in js]
    if singles and copies.r > 1:
        raise NotImplementedError("copies side by side need every op groupable")
    for j, k in singles:  # edge by edge (not groupable)
        op = edges[e + j].ops[k]
        ys.append(op(states[j], group_input((j,), True)) if pre_relu[e + j][k] else op(states[j]))
        index.append((e + j) * n_ops + k)
    return index, ys, zero_edge, e + n_inputs


class Scored:
    """The GM-scored edge of a cell in a copies pass: copy r has op ``ops[r]`` alone on ``edge``
    (the edge's index in the cell), weighted ``weights[r]`` (``None``: 1, the one-hot row)."""

    def __init__(self, edge: int, ops: Sequence[int], weights: torch.Tensor | None) -> None:
        self.edge = edge
        self.ops = list(ops)
        self.weights = weights

    def term(self, mixed: MixedOp, x: torch.Tensor, r: int) -> torch.Tensor:
        """The edge's output for each copy (copy i's block of ``x`` through op ``ops[i]``), side by side."""
        ys = [mixed.ops[k](xi) for k, xi in zip(self.ops, x.chunk(r, dim=1))]
        if self.weights is not None:
            ys = [y * self.weights[i] for i, y in enumerate(ys)]
        return torch.cat(ys, dim=1) if r > 1 else ys[0]


def cat_copies(tensors: Sequence[torch.Tensor], r: int) -> torch.Tensor:
    """``torch.cat(tensors, 1)`` of each copy, copies side by side: ``[t0 copy 0, t1 copy 0, ...,
    t0 copy 1, ...]`` (a DARTS cell's output concatenates its nodes per copy)."""
    if r == 1 or len(tensors) == 1:
        return torch.cat(list(tensors), dim=1) if len(tensors) > 1 else tensors[0]
    n, _, h, w = tensors[0].shape
    out = torch.stack([t.reshape(n, r, -1, h, w) for t in tensors], dim=2).view(n, -1, h, w)
    if tensors[0].is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out
