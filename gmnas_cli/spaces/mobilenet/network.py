"""Stand-alone ProxylessNAS networks of the MobileNet space (``gmnas retrain``), from an op list."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gmnas_cli.spaces.base import Arch
from gmnas_cli.spaces.mbconv.layers import Classifier, MBConv, he_fout_init, proxyless_conv
from gmnas_cli.spaces.mobilenet.ops import BlockSpec, parse_op


class MobileBlock(nn.Module):
    """A stand-alone block: its chosen MBConv (or none: ``zero``) plus the identity shortcut."""

    def __init__(self, spec: BlockSpec, op: str) -> None:
        super().__init__()
        parsed = parse_op(op)
        self.residual = spec.residual
        self.conv = None if parsed is None else MBConv.proxyless(spec.c_in, spec.c_out, parsed[0], spec.stride, parsed[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return x
        y = self.conv(x)
        return x + y if self.residual else y


class MobileNetNetwork(nn.Module):
    """A discrete ProxylessNAS network; ``config`` is its ``net.config`` JSON."""

    def __init__(self, space: Any, arch: Arch, num_classes: int, dropout: float = 0.0) -> None:
        """``space``: the ``MobileNetSpace`` whose widths, blocks and ``net.config`` format it uses."""
        super().__init__()
        self.arch = dict(arch)
        self.config = space.arch_to_config(arch, num_classes, dropout)
        self.first_conv = proxyless_conv(space.in_channels, space.stem, 3, 2)
        self.first_block = MBConv.proxyless(space.stem, space.first, 3, 1, 1)
        self.blocks = nn.Sequential(*[MobileBlock(spec, arch[e]) for e, spec in zip(space.edges, space.specs)])
        self.feature_mix = proxyless_conv(space.last_width, space.mix, 1, 1)
        self.classifier = Classifier(space.mix, num_classes, dropout)
        he_fout_init(self)  # ProxylessNAS model_init='he_fout'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.feature_mix(self.blocks(self.first_block(self.first_conv(x)))))
