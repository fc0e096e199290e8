"""Figures of one architecture (``gmnas arch``): parameters and MACs of its stand-alone network,
for any space, through the space's own ``str_to_arch`` and ``build_network``.

Both come from ``spaces/counting.py``: MACs measured on one image in eval mode (no auxiliary
head), parameters without the auxiliary head, as DARTS reports model size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gmnas_cli.spaces import Arch, SearchSpace
from gmnas_cli.spaces.counting import count_params, measured_macs


@dataclass
class ArchFigures:
    params_m: float  # millions, without the auxiliary head
    macs_m: float  # millions of multiply-accumulates for one image
    input_shape: tuple[int, int, int]


def arch_figures(space: SearchSpace, arch: Arch, retrain_cfg: Any, num_classes: int, in_channels: int,
                 image_size: int) -> ArchFigures:
    net = space.build_network(arch, retrain_cfg, num_classes, in_channels)
    return ArchFigures(params_m=count_params(net) / 1e6, macs_m=measured_macs(net, image_size, in_channels) / 1e6,
                       input_shape=(in_channels, image_size, image_size))
