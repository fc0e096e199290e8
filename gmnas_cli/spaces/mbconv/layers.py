"""MobileNetV2-style building blocks of ProxylessNAS (Cai et al. 2019), reusable by other spaces.

Layers follow ProxylessNAS upstream (mit-han-lab/proxylessnas ``modules/layers.py``): a
``ConvLayer`` is conv-BN-ReLU6; an ``MBConv`` (``MBInvertedConvLayer``) is an optional 1x1 expand
(conv-BN-ReLU6, absent when the expand ratio is 1), a depthwise kxk conv-BN-ReLU6 with the stride,
and a linear 1x1 projection conv-BN; the middle width is ``round(in * expand)``. BN uses
momentum 0.1 and eps 1e-3 (upstream ``set_bn_param``). Each layer also states its
multiply-accumulate count (``macs``) and its ProxylessNAS ``net.config`` entry (``config``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

BN_MOMENTUM = 0.1  # ProxylessNAS set_bn_param(momentum=0.1, eps=1e-3)
BN_EPS = 1e-3


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to a multiple of ``divisor``, never below 90% of ``v`` (ProxylessNAS/MobileNetV2)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=BN_MOMENTUM, eps=BN_EPS)


def conv_macs(c_in: int, c_out: int, k: int, out_hw: int, groups: int = 1) -> int:
    """Multiply-accumulates of a bias-free kxk convolution producing an ``out_hw`` square map."""
    return out_hw * out_hw * k * k * (c_in // groups) * c_out


class ConvLayer(nn.Sequential):
    """kxk conv (stride s) - BN - ReLU6 (ProxylessNAS ``ConvLayer``; first conv, feature mix)."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), bn(c_out), nn.ReLU6(inplace=True))
        self.c_in, self.c_out, self.k, self.stride = c_in, c_out, k, stride

    def out_size(self, size: int) -> int:
        return (size + 2 * (self.k // 2) - self.k) // self.stride + 1

    def macs(self, size: int) -> int:
        """MACs on a ``size`` x ``size`` input."""
        return conv_macs(self.c_in, self.c_out, self.k, self.out_size(size))

    def config(self) -> dict[str, Any]:
        return {"name": "ConvLayer", "kernel_size": self.k, "stride": self.stride, "dilation": 1, "groups": 1,
                "bias": False, "has_shuffle": False, "in_channels": self.c_in, "out_channels": self.c_out,
                "use_bn": True, "act_func": "relu6", "dropout_rate": 0, "ops_order": "weight_bn_act"}


class MBConv(nn.Module):
    """Inverted residual convolution without its shortcut (ProxylessNAS ``MBInvertedConvLayer``)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        self.c_in, self.c_out, self.k, self.stride, self.expand = c_in, c_out, k, stride, expand
        mid = self.mid = round(c_in * expand)
        self.inverted_bottleneck = None if expand == 1 else nn.Sequential(
            nn.Conv2d(c_in, mid, 1, bias=False), bn(mid), nn.ReLU6(inplace=True))
        self.depth_conv = nn.Sequential(nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False), bn(mid),
                                        nn.ReLU6(inplace=True))
        self.point_linear = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False), bn(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))

    def out_size(self, size: int) -> int:
        return (size + 2 * (self.k // 2) - self.k) // self.stride + 1

    def macs(self, size: int) -> int:
        """MACs on a ``size`` x ``size`` input."""
        return self.macs_of(self.c_in, self.c_out, self.k, self.stride, self.expand, size)

    @staticmethod
    def macs_of(c_in: int, c_out: int, k: int, stride: int, expand: int, size: int) -> int:
        """MACs of an MBConv on a ``size`` x ``size`` input: the 1x1 expand at input size, the
        depthwise kxk and the 1x1 projection at output size (BN, ReLU6 and the skip add uncounted,
        as ProxylessNAS ``get_flops`` and torch's FlopCounterMode)."""
        mid = round(c_in * expand)
        out = (size + 2 * (k // 2) - k) // stride + 1
        total = 0 if expand == 1 else conv_macs(c_in, mid, 1, size)
        return total + conv_macs(mid, mid, k, out, groups=mid) + conv_macs(mid, c_out, 1, out)

    def config(self) -> dict[str, Any]:
        return {"name": "MBInvertedConvLayer", "in_channels": self.c_in, "out_channels": self.c_out,
                "kernel_size": self.k, "stride": self.stride, "expand_ratio": self.expand, "mid_channels": self.mid}


def zero_layer_config(stride: int) -> dict[str, Any]:
    """ProxylessNAS's ``ZeroLayer`` entry (a block whose only path is its identity shortcut)."""
    return {"name": "ZeroLayer", "stride": stride}


def identity_config(c: int) -> dict[str, Any]:
    """ProxylessNAS's ``IdentityLayer`` shortcut entry."""
    return {"name": "IdentityLayer", "in_channels": c, "out_channels": c, "use_bn": False, "act_func": None,
            "dropout_rate": 0, "ops_order": "weight_bn_act"}


class Classifier(nn.Module):
    """Global average pooling, optional dropout, linear layer (ProxylessNAS ``LinearLayer``)."""

    def __init__(self, c_in: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.c_in, self.num_classes, self.dropout_rate = c_in, num_classes, dropout
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x.mean((2, 3))))

    def macs(self) -> int:
        return self.c_in * self.num_classes

    def config(self) -> dict[str, Any]:
        return {"name": "LinearLayer", "in_features": self.c_in, "out_features": self.num_classes, "bias": True,
                "use_bn": False, "act_func": None, "dropout_rate": self.dropout_rate, "ops_order": "weight_bn_act"}
