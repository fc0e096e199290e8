"""NB201 space: masks honoured (disabled ops never run), arch strings, derivation."""

from __future__ import annotations

import torch

from gmnas_cli.config.schema import SpaceConfig
from gmnas_cli.spaces import build_space
from gmnas_cli.spaces.nb201 import NB201_OPS

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def space(ops=NB201_OPS, c=4, n=1):
    return build_space(SpaceConfig(name="nb201", ops=list(ops), C=c, N=n), num_classes=10, in_channels=3)


def test_arch_string_round_trip():
    sp = space()
    arch = sp.str_to_arch(BEST)
    assert arch["3<-2"] == "nor_conv_1x1" and arch["3<-0"] == "skip_connect"
    assert sp.arch_to_str(arch) == BEST
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        a = sp.sample_arch(sp.full_mask(), gen)
        assert sp.str_to_arch(sp.arch_to_str(a)) == a


def test_disabled_ops_are_never_called():
    sp = space()
    mask = sp.full_mask()
    mask["2<-1"] = ["skip_connect", "avg_pool_3x3"]
    mask["1<-0"] = ["nor_conv_1x1"]
    net = sp.build_supernet(mask)
    calls: dict[tuple[int, str], int] = {}
    e_idx = {e: i for i, e in enumerate(sp.edges)}
    for cell in net.cells:
        if not hasattr(cell, "edges"):
            continue
        for e, mixed in zip(sp.edges, cell.edges):
            for name, op in zip(mixed.op_names, mixed.ops):
                op.register_forward_hook(lambda *_, key=(e_idx[e], name): calls.__setitem__(key, calls.get(key, 0) + 1))
    w = torch.softmax(torch.zeros(len(sp.edges), len(sp.ops)).masked_fill(~net.mask_tensor, -1e9), -1)
    out = net(torch.randn(2, 3, 8, 8), w)
    assert out.shape == (2, 10)
    called = {(e, o) for (e, o) in calls}
    assert (e_idx["2<-1"], "nor_conv_3x3") not in called
    assert (e_idx["1<-0"], "nor_conv_3x3") not in called
    assert (e_idx["2<-1"], "avg_pool_3x3") in called
    assert not any(o == "none" for _, o in called)  # zeros are never computed
    for e, ops in mask.items():
        for o in ops:
            if o != "none":
                assert (e_idx[e], o) in called


def test_derive_stays_inside_the_mask():
    sp = space()
    mask = sp.full_mask()
    mask["3<-0"] = ["none", "skip_connect"]
    w = torch.zeros(len(sp.edges), len(sp.ops))
    w[:, sp.ops.index("nor_conv_3x3")] = 5.0  # strongest op, but disabled on 3<-0
    arch = sp.derive(w, mask)
    assert arch["3<-0"] in mask["3<-0"] and arch["1<-0"] == "nor_conv_3x3"


def test_four_op_variant_has_no_none():
    sp = space(ops=NB201_OPS[1:])
    assert "none" not in sp.ops and len(sp.edges) == 6
