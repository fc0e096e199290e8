"""NB201 space: its arch string format and op variants (round trip, masks and derivation for every
space: tests/test_contract.py)."""

from __future__ import annotations

from gmnas_cli.config.schema import SpaceConfig
from gmnas_cli.spaces import build_space
from gmnas_cli.spaces.nb201 import NB201_OPS

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def space(ops=NB201_OPS, c=4, n=1):
    return build_space(SpaceConfig(name="nb201", ops=list(ops), C=c, N=n), num_classes=10, in_channels=3)


def test_arch_string_format():
    sp = space()
    arch = sp.str_to_arch(BEST)
    assert arch["3<-2"] == "nor_conv_1x1" and arch["3<-0"] == "skip_connect"
    assert sp.arch_to_str(arch) == BEST


def test_four_op_variant_has_no_none():
    sp = space(ops=NB201_OPS[1:])
    assert "none" not in sp.ops and len(sp.edges) == 6
