"""The one parameter counter and the one measured MAC counter of built networks.

The papers' "MFLOPs" (ProxylessNAS, OFA, GM-NAS Table 5) are multiply-accumulates. Analytic
per-layer counts live with the layers (``spaces/mbconv/layers.py``); ``measured_macs`` measures a
built network with ``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per MAC for
convolutions and matrix products and nothing for BN, activations, additions or pooling.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def measured_macs(net: nn.Module, image_size: int, in_channels: int = 3) -> int:
    """MACs of one ``image_size`` x ``image_size`` image through ``net`` in eval mode (FlopCounterMode / 2;
    an auxiliary head, active in training mode only, is not counted)."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, in_channels, image_size, image_size, device=device))
    net.train(was_training)
    return int(counter.get_total_flops()) // 2


def count_params(net: nn.Module) -> int:
    """Parameters of ``net`` without its auxiliary head, as DARTS reports model size
    (quark0/darts ``utils.count_parameters_in_MB``); also on the ``meta`` device."""
    return sum(p.numel() for name, p in net.named_parameters() if "auxiliary" not in name)
