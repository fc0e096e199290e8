"""Figures of one architecture (``gmnas arch``): parameters and MACs of its stand-alone network,
for any space, through the space's own ``str_to_arch`` and ``build_network``.

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one image in eval mode (no
auxiliary head), which counts 2 FLOPs per multiply-accumulate of convolutions and matrix products;
parameters exclude the auxiliary head, as DARTS reports model size (DARTS ``utils.count_parameters_in_MB``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from gmnas_cli.spaces import Arch, SearchSpace
from gmnas_cli.training.retrain import count_params_m


@dataclass
class ArchFigures:
    params_m: float  # millions, without the auxiliary head
    macs_m: float  # millions of multiply-accumulates for one image
    input_shape: tuple[int, int, int]


def count_macs(net: torch.nn.Module, input_shape: tuple[int, int, int]) -> float:
    """Multiply-accumulates of one forward pass on one image (eval mode)."""
    net.eval()
    x = torch.zeros(1, *input_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops() / 2.0


def arch_figures(space: SearchSpace, arch: Arch, retrain_cfg: Any, num_classes: int, in_channels: int,
                 image_size: int) -> ArchFigures:
    net = space.build_network(arch, retrain_cfg, num_classes, in_channels)
    shape = (in_channels, image_size, image_size)
    return ArchFigures(params_m=count_params_m(net), macs_m=count_macs(net, shape) / 1e6, input_shape=shape)
