"""GM per-op gradients with less repeated work (criteria/gm/fast.py) and the fused DARTS cell:
the same numbers as the plain paths (the official per-op loop; per-edge mixed-op sums)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import open_dict

from gmnas_cli.bench.suite import build_ours, split_context, synthetic_data
from gmnas_cli.criteria.gm.fast import fast_op_gradients
from gmnas_cli.criteria.gm.scoring import gm_minibatches, plain_op_gradients


def assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    """float32 rounding of another summation order (vmapped convolutions sum the batch their own
    way): 1e-4 relative, or 1e-4 of the largest entry."""
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


CASES = [("nb201", "darts", "space.C=4"), ("nb201", "snas", "space.C=4"), ("nb201", "rsps", "space.C=4"),
         ("darts", "darts", "space.C=2"), ("darts", "snas", "space.C=2 criterion.scored_weight=softmax")]
DARTS_OPS4 = "space.ops=[none,max_pool_3x3,skip_connect,sep_conv_3x3]"  # every kind of op, fewer of them


def _ctx(cfg_factory, space: str, algo: str, *extra: str, ops: str = DARTS_OPS4):
    extra = (*extra, ops) if space == "darts" else extra
    # NCHW: tied max-pool maxima (clamped uint8 pixels) get their gradient by a layout-dependent
    # rule, and the vmapped pass does not keep the channels-last layout.
    cfg = cfg_factory("experiment=smoke", f"space={space}", f"algo={algo}", "criterion=gm", "space.N=1",
                      "train.batch_size=8", "channels_last=false", *extra)
    with open_dict(cfg):
        cfg.bench.batch_size = 8
    trainer, sp = build_ours(cfg, torch.device("cpu"), synthetic_data(64, 8, 0))
    return split_context(trainer, sp, cfg)


@pytest.mark.parametrize("space,algo,size", CASES)
def test_prefix_reuse_and_batched_ops_equal_the_plain_loop(cfg_factory, space, algo, size):
    ctx = _ctx(cfg_factory, space, algo, *size.split())
    edges = ctx.candidate_edges()
    edges = [edges[0], edges[3], edges[-1]]  # prefixes ending before the first, a middle, the last node
    (index, batch), = list(gm_minibatches(ctx, 1))
    for edge in edges:
        ops = ctx.ops_of(edge)
        plain = plain_op_gradients(ctx, edge, ops, batch, index)
        assert plain.shape[0] == len(ops) and plain.abs().sum() > 0
        assert_close(fast_op_gradients(ctx, edge, ops, batch, index, batched=False), plain)
        assert_close(fast_op_gradients(ctx, edge, ops, batch, index, batched=True), plain)
        if space == "darts":  # the ops' copies side by side in the channels, one pass
            assert_close(fast_op_gradients(ctx, edge, ops, batch, index, batched="channels"), plain)


def test_copies_side_by_side_equal_the_plain_loop_with_every_darts_op(cfg_factory):
    """criterion.batched_ops=channels with all 8 DARTS ops (dilated and 5x5 convs, both pools,
    FactorizedReduce) on a normal and a reduction-cell edge, scored one-hot and with softmax weights."""
    for extra in ("criterion.scored_weight=one_hot", "criterion.scored_weight=softmax"):
        ctx = _ctx(cfg_factory, "darts", "snas", "space.C=2", "space.split_cells=[normal,reduce]", extra,
                   ops="space.ops=[none,max_pool_3x3,avg_pool_3x3,skip_connect,sep_conv_3x3,sep_conv_5x5,"
                   "dil_conv_3x3,dil_conv_5x5]")
        edges = ctx.candidate_edges()
        (index, batch), = list(gm_minibatches(ctx, 1))
        for edge in (edges[2], next(e for e in edges if e.startswith("reduce:4"))):
            ops = ctx.ops_of(edge)
            plain = plain_op_gradients(ctx, edge, ops, batch, index)
            assert plain.shape[0] == len(ops) >= 7
            assert_close(fast_op_gradients(ctx, edge, ops, batch, index, batched="channels"), plain)


@pytest.mark.parametrize("space,size", [("nb201", "space.C=4"), ("darts", "space.C=2")])
def test_prefix_then_suffix_is_the_forward(cfg_factory, space, size):
    ctx = _ctx(cfg_factory, space, "darts", size)
    net = ctx.trainer.net
    x = torch.randn(4, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    w = torch.softmax(torch.randn(len(ctx.space.edges), len(ctx.space.ops)), -1)
    with torch.no_grad():
        ref = net(x, w, net.enabled)
        for e in (0, 3, len(ctx.space.edges) // 2 - 1, len(ctx.space.edges) - 1):
            torch.testing.assert_close(net.forward_suffix(net.forward_prefix(x, w, net.enabled, e), w,
                                                          net.enabled, e), ref, rtol=1e-5, atol=1e-6)


def _per_edge_cell(cell, s0, s1, weights, active):
    """The plain DARTS cell: one MixedOp (its own weighted sum) per edge, summed per node."""
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    e = 0
    for i in range(2, cell.nodes + 2):
        s = None
        for j in range(i):
            if active[e]:
                y = cell.edges[e](states[j], weights[e], active[e])
                s = y if s is None else s + y
            e += 1
        states.append(s)
    return torch.cat(states[2:], dim=1)


def test_fused_darts_cell_equals_per_edge_mixed_ops(cfg_factory):
    ctx = _ctx(cfg_factory, "darts", "darts", "space.C=2")
    net = ctx.trainer.net
    n = net.edges_per_cell
    gen = torch.Generator().manual_seed(0)
    for cell in (net.cells[0], next(c for c in net.cells if c.reduction)):
        c_in = cell.preprocess1[1].in_channels
        s0 = torch.randn(4, cell.preprocess0.conv_1.in_channels if hasattr(cell.preprocess0, "conv_1")
                         else cell.preprocess0[1].in_channels, 8, 8, generator=gen)
        s1 = torch.randn(4, c_in, 8, 8, generator=gen)
        w = torch.softmax(torch.randn(n, len(ctx.space.ops), generator=gen), -1).requires_grad_()
        active = [[k for k in range(len(ctx.space.ops)) if (e + k) % 3] for e in range(n)]  # partial masks
        active[0] = [0]  # `none` alone on one edge
        fused = cell(s0, s1, w, active)
        plain = _per_edge_cell(cell, s0, s1, w, active)
        torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
        g_fused = torch.autograd.grad(fused.square().sum(), [w, *cell.parameters()], allow_unused=True)
        g_plain = torch.autograd.grad(plain.square().sum(), [w, *cell.parameters()], allow_unused=True)
        for a, b in zip(g_fused, g_plain):
            assert (a is None) == (b is None)
            if a is not None:
                # float32 rounding of a different summation order, amplified by BN: scale-relative
                torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * float(b.abs().max()))


def test_channels_batching_is_refused_where_the_space_has_no_op_copies(cfg_factory):
    from gmnas_cli.infra.errors import ConfigError
    from gmnas_cli.pipeline.validate import validate

    with pytest.raises(ConfigError, match=r"criterion.batched_ops=channels: space nb201 .*valid here: off, vmap, auto"):
        validate(cfg_factory("experiment=smoke", "space=nb201", "criterion=gm", "criterion.batched_ops=channels"), "split")
    validate(cfg_factory("experiment=smoke", "space=darts", "criterion=gm", "criterion.batched_ops=channels"), "split")


def test_edge_grouping_gives_the_same_supernet_step(cfg_factory):
    """Grouped cell nodes (one computation per node and op) against edge by edge: same loss and
    gradients, with every DARTS op (edge_grouping forces either way, whatever the size)."""
    from gmnas_cli.spaces.darts.grouped import edge_grouping

    ctx = _ctx(cfg_factory, "darts", "darts", "space.C=2", ops="space.ops=[none,max_pool_3x3,avg_pool_3x3,"
               "skip_connect,sep_conv_3x3,sep_conv_5x5,dil_conv_3x3,dil_conv_5x5]")
    net = ctx.trainer.net
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 8, 8, generator=gen)
    w = torch.softmax(torch.randn(len(ctx.space.edges), len(ctx.space.ops), generator=gen), -1).requires_grad_()
    params = [p for p in net.parameters() if p.requires_grad]
    out = {}
    for enabled in (True, False):
        with edge_grouping(enabled):
            loss = net(x, w, net.enabled).logsumexp(-1).sum()
            out[enabled] = (loss, torch.autograd.grad(loss, [w, *params], allow_unused=True))
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(out[True][1], out[False][1]):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * float(b.abs().max()) + 1e-8)
