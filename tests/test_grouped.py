"""One op of several edges as one grouped computation (spaces/darts/grouped.py): the same outputs and
gradients as running each edge's module, at every map size (taps that read only padding dropped)
and with network copies side by side."""

from __future__ import annotations

import pytest
import torch

from gmnas_cli.spaces.copies import Copies
from gmnas_cli.spaces.darts.grouped import groupable, grouped_forward
from gmnas_cli.spaces.darts.ops import search_op

OPS = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
       "dil_conv_5x5"]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("stride", [1, 2])
def test_grouped_op_equals_each_edge_module(size, stride):
    gen = torch.Generator().manual_seed(size * 10 + stride)
    c, g = 4, 3
    for name in OPS:
        torch.manual_seed(size)
        mods = [search_op(name, c, stride).double() for _ in range(g)]  # float64: no rounding to hide a bug
        assert all(groupable(m) for m in mods), name
        xs = [torch.randn(4, c, size, size, generator=gen, dtype=torch.float64, requires_grad=True)
              for _ in range(g)]
        plain = torch.cat([m(x) for m, x in zip(mods, xs)], dim=1)
        grouped = grouped_forward(mods, torch.cat(xs, dim=1))
        torch.testing.assert_close(grouped, plain, rtol=1e-9, atol=1e-9, msg=f"{name} at {size}x{size}")
        params = [p for m in mods for p in m.parameters()]
        g_plain = torch.autograd.grad(plain.square().sum(), [*xs, *params])
        g_grouped = torch.autograd.grad(grouped.square().sum(), [*xs, *params])
        for a, b in zip(g_grouped, g_plain):
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9)


def test_copies_give_each_copy_its_own_weight_gradient():
    torch.manual_seed(0)
    mods = [search_op("sep_conv_5x5", 4, 1).double() for _ in range(2)]
    r = 3
    params = [p for m in mods for p in m.parameters()]
    reps = {id(p): p.detach().unsqueeze(0).repeat(r, *([1] * p.dim())).requires_grad_() for p in params}
    xs = [torch.randn(4, 4 * r, 2, 2, dtype=torch.float64) for _ in mods]  # 2x2: taps dropped too  # each edge's input: its r copies side by side
    out = grouped_forward(mods, torch.cat(xs, dim=1), copies=Copies(r, reps))
    loss = sum((i + 1) * t.square().sum() for i, t in enumerate(out.chunk(2 * r, dim=1)))  # copy-specific
    grads = torch.autograd.grad(loss, list(reps.values()))
    for e, m in enumerate(mods):
        for i in range(r):
            y = m(xs[e][:, 4 * i : 4 * (i + 1)])
            want = torch.autograd.grad((e * r + i + 1) * y.square().sum(), list(m.parameters()))
            ids = [id(q) for q in params]
            got = [grads[ids.index(id(p))][i] for p in m.parameters()]
            for a, b in zip(got, want):
                torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9)
