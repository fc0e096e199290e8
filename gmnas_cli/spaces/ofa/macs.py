"""Analytic multiply-accumulates (the paper's and OFA's "MFLOPs") and parameters of an OFA subnet.

Counts convolutions and linear layers only, as OFA's ``count_net_flops`` and
``torch.utils.flop_counter.FlopCounterMode`` (which counts 2 per MAC) do: a conv gives
``H_out * W_out * C_out * C_in / groups * k * k``, a linear ``in * out``; BN, activations, pooling
and the SE multiply are not counted. Unlike the official GM fork's helper, depth and the configured
widths are honoured (notes/mobilenet-facts.md 1b). Cheap enough for every evolution query.
"""

from __future__ import annotations

from gmnas_cli.spaces.mbconv.elastic import DynamicSE, make_divisible
from gmnas_cli.spaces.ofa.space import OfaSpace, Subnet


def _out(size: int, stride: int) -> int:
    return (size - 1) // stride + 1  # "same" padding k // 2 with odd k


def subnet_macs(space: OfaSpace, subnet: Subnet, image_size: int) -> int:
    """MACs of the static network of ``subnet`` on ``image_size`` x ``image_size`` inputs."""
    h = _out(image_size, 2)
    fw = space.first_width
    macs = h * h * fw * space.in_channels * 9  # first conv 3x3 s2
    macs += h * h * fw * 9 + h * h * fw * fw  # first block: depthwise 3x3 + projection
    for i in space.active_blocks(subnet):
        cin, cout, stride, spec = space.block_config(i)
        mid = make_divisible(round(cin * subnet.e[i]))
        k = subnet.ks[i]
        ho = _out(h, stride)
        macs += h * h * cin * mid  # expand 1x1
        macs += ho * ho * mid * k * k  # depthwise
        if spec.se:
            smid = make_divisible(mid // DynamicSE.REDUCTION)
            macs += 2 * mid * smid  # SE reduce + expand on the pooled 1x1 map
        macs += ho * ho * mid * cout  # projection 1x1
        h = ho
    macs += h * h * space.widths[-1] * space.final_width  # final expand 1x1
    macs += space.final_width * space.mix_width  # feature mix on the pooled map
    macs += space.mix_width * space.num_classes  # classifier
    return int(macs)


def subnet_mflops(space: OfaSpace, subnet: Subnet, image_size: int) -> float:
    return subnet_macs(space, subnet, image_size) / 1e6
