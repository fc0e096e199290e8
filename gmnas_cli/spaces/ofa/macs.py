"""Analytic multiply-accumulates (the paper's and OFA's "MFLOPs") and parameters of an OFA subnet.

Counts convolutions and linear layers only, as OFA's ``count_net_flops`` and
``torch.utils.flop_counter.FlopCounterMode`` (which counts 2 per MAC) do: a conv gives
``H_out * W_out * C_out * C_in / groups * k * k``, a linear ``in * out``; BN, activations, pooling
and the SE multiply are not counted. Unlike the official GM fork's helper, depth and the configured
widths are honoured (docs/ofa.md). Cheap enough for every evolution query.
"""

from __future__ import annotations

from gmnas_cli.spaces.mbconv.layers import conv_macs, conv_out, make_divisible, mbconv_macs
from gmnas_cli.spaces.ofa.space import OfaSpace, Subnet


def subnet_macs(space: OfaSpace, subnet: Subnet, image_size: int) -> int:
    """MACs of the static network of ``subnet`` on ``image_size`` x ``image_size`` inputs."""
    h = conv_out(image_size, 3, 2)
    fw = space.first_width
    macs = conv_macs(space.in_channels, fw, 3, h)  # first conv 3x3 s2
    macs += mbconv_macs(fw, fw, fw, 3, 1, h, expand=False)  # first block: depthwise 3x3 + projection
    for i in space.active_blocks(subnet):
        cin, cout, stride, spec = space.block_config(i)
        mid = make_divisible(round(cin * subnet.e[i]))
        k = subnet.ks[i]
        macs += mbconv_macs(cin, mid, cout, k, stride, h, se=spec.se)
        h = conv_out(h, k, stride)
    macs += conv_macs(space.widths[-1], space.final_width, 1, h)  # final expand 1x1
    macs += space.final_width * space.mix_width  # feature mix on the pooled map
    macs += space.mix_width * space.num_classes  # classifier
    return int(macs)


def subnet_mflops(space: OfaSpace, subnet: Subnet, image_size: int) -> float:
    return subnet_macs(space, subnet, image_size) / 1e6
