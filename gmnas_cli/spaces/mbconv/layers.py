"""Static MobileNet building blocks shared by ``space=mobilenet`` (ProxylessNAS, Cai et al. 2019)
and ``space=ofa_mbv3`` (OFA, Cai et al. 2020); the elastic forms are in ``mbconv/elastic.py``.

One family, as OFA shares its layers between its ProxylessNAS and MobileNetV3 networks
(mit-han-lab/once-for-all ``ofa/utils/layers.py``):
- ``ConvBNAct``: kxk conv (stride s), optional BN, optional activation (ProxylessNAS/OFA ``ConvLayer``);
- ``MBConv``: an inverted residual block: optional 1x1 expand conv-BN-act, depthwise kxk conv-BN-act
  with the stride, optional squeeze-and-excitation, linear 1x1 projection conv-BN, and the identity
  shortcut when asked (ProxylessNAS ``MBInvertedConvLayer``, OFA ``MBConvLayer`` in a ``ResidualBlock``);
- ``SE``: squeeze-and-excitation, reduction 4, width divisor 8 (OFA ``SEModule``);
- ``Classifier``: global pool, optional dropout, linear (ProxylessNAS ``LinearLayer``).

Each space keeps its own BN settings and state-dict names (``PROXYLESS``, ``OFA``), so
checkpoints of either space load unchanged. MACs (the papers' "MFLOPs") are computed here once
(``conv_macs``, ``mbconv_macs``): convolutions and linear layers only, as ProxylessNAS ``get_flops``,
OFA ``count_net_flops`` and torch's ``FlopCounterMode`` count them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

BN_MOMENTUM = 0.1  # ProxylessNAS set_bn_param(momentum=0.1, eps=1e-3)
BN_EPS = 1e-3
OFA_BN_EPS = 1e-5  # OFA MobileNetV3: torch's BatchNorm2d defaults (momentum 0.1, eps 1e-5)
SE_REDUCTION = 4  # OFA SEModule.REDUCTION


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to a multiple of ``divisor``, never below 90% of ``v`` (ProxylessNAS/OFA/TF
    MobileNetV2 ``make_divisible``)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


def activation(name: str) -> nn.Module:
    """``relu6`` (ProxylessNAS), ``relu`` or ``h_swish`` (OFA MobileNetV3: relu early, h_swish later)."""
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


def conv_out(size: int, k: int, stride: int) -> int:
    """Output size of a kxk conv with padding k // 2 on a ``size`` x ``size`` map."""
    return (size + 2 * (k // 2) - k) // stride + 1


def conv_macs(c_in: int, c_out: int, k: int, out_hw: int, groups: int = 1) -> int:
    """Multiply-accumulates of a bias-free kxk convolution producing an ``out_hw`` square map."""
    return out_hw * out_hw * k * k * (c_in // groups) * c_out


def mbconv_macs(c_in: int, mid: int, c_out: int, k: int, stride: int, size: int, expand: bool = True,
                se: bool = False) -> int:
    """MACs of an MBConv on a ``size`` x ``size`` input: the 1x1 expand at input size, the depthwise
    kxk and the 1x1 projection at output size, and the SE's two 1x1 convs on the pooled map (BN,
    activations, the SE multiply and the skip add are not counted)."""
    out = conv_out(size, k, stride)
    total = conv_macs(c_in, mid, 1, size) if expand else 0
    total += conv_macs(mid, mid, k, out, groups=mid)
    if se:
        total += 2 * mid * make_divisible(mid // SE_REDUCTION)
    return total + conv_macs(mid, c_out, 1, out)


@dataclass(frozen=True)
class Style:
    """A space's BN epsilon and the state-dict names of an MBConv's expand, depthwise and projection."""

    bn_eps: float
    expand: str
    depthwise: str
    project: str


PROXYLESS = Style(BN_EPS, "inverted_bottleneck", "depth_conv", "point_linear")  # ProxylessNAS MBInvertedConvLayer
OFA = Style(OFA_BN_EPS, "expand", "depthwise", "project")  # space=ofa_mbv3's checkpoints


class ConvBNAct(nn.Sequential):
    """kxk conv (stride s, groups) - BN - activation; BN and activation optional."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, act: str | None, bn: bool = True,
                 groups: int = 1, eps: float = OFA_BN_EPS) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False)]
        if bn:
            layers.append(nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM, eps=eps))
        if act is not None:
            layers.append(activation(act))
        super().__init__(*layers)
        self.c_in, self.c_out, self.k, self.stride, self.groups, self.act_name = c_in, c_out, k, stride, groups, act

    def out_size(self, size: int) -> int:
        return conv_out(size, self.k, self.stride)

    def macs(self, size: int) -> int:
        """MACs on a ``size`` x ``size`` input."""
        return conv_macs(self.c_in, self.c_out, self.k, self.out_size(size), self.groups)

    def config(self) -> dict[str, Any]:
        """ProxylessNAS's ``ConvLayer`` entry of ``net.config``."""
        return {"name": "ConvLayer", "kernel_size": self.k, "stride": self.stride, "dilation": 1,
                "groups": self.groups, "bias": False, "has_shuffle": False, "in_channels": self.c_in,
                "out_channels": self.c_out, "use_bn": len(self) > 1 and isinstance(self[1], nn.BatchNorm2d),
                "act_func": self.act_name, "dropout_rate": 0, "ops_order": "weight_bn_act"}


def proxyless_conv(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> ConvBNAct:
    """ProxylessNAS's ``ConvLayer``: conv-BN-ReLU6 (first conv, feature mix)."""
    return ConvBNAct(c_in, c_out, k, stride, "relu6", eps=BN_EPS)


class SE(nn.Module):
    """Squeeze-and-excitation: pool, 1x1 reduce + ReLU, 1x1 expand + hard sigmoid, multiply (OFA ``SEModule``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = make_divisible(channels // SE_REDUCTION)
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.reduce(x.mean((2, 3), keepdim=True)), inplace=True)
        return x * F.hardsigmoid(self.expand(y), inplace=True)


class MBConv(nn.Module):
    """A static inverted residual block (module docstring). ``expand=False`` drops the 1x1 expand
    (expand ratio 1, ``mid == c_in``); ``residual`` adds the identity shortcut inside the block."""

    def __init__(self, c_in: int, mid: int, c_out: int, k: int, stride: int, act: str, se: bool = False,
                 expand: bool = True, residual: bool = False, style: Style = OFA,
                 expand_ratio: float | None = None) -> None:
        super().__init__()
        self.c_in, self.mid, self.c_out, self.k, self.stride = c_in, mid, c_out, k, stride
        self.has_expand, self.use_se, self.residual, self.style = expand, se, residual, style
        self.expand_ratio = expand_ratio if expand_ratio is not None else mid / c_in
        eps = style.bn_eps
        self.add_module(style.expand, ConvBNAct(c_in, mid, 1, 1, act, eps=eps) if expand else None)
        self.add_module(style.depthwise, ConvBNAct(mid, mid, k, stride, act, groups=mid, eps=eps))
        self.se = SE(mid) if se else None
        self.add_module(style.project, ConvBNAct(mid, c_out, 1, 1, None, eps=eps))

    @classmethod
    def proxyless(cls, c_in: int, c_out: int, k: int, stride: int, expand: int) -> MBConv:
        """ProxylessNAS ``MBInvertedConvLayer``: ReLU6, no SE, middle width ``round(in * expand)``,
        no 1x1 expand when the ratio is 1, shortcut added by the enclosing block."""
        return cls(c_in, round(c_in * expand), c_out, k, stride, "relu6", expand=expand != 1, style=PROXYLESS,
                   expand_ratio=expand)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        modules = self._modules
        expand = modules[self.style.expand]
        h = x if expand is None else expand(x)
        h = modules[self.style.depthwise](h)
        if self.se is not None:
            h = self.se(h)
        h = modules[self.style.project](h)
        return x + h if self.residual else h

    def out_size(self, size: int) -> int:
        return conv_out(size, self.k, self.stride)

    def macs(self, size: int) -> int:
        """MACs on a ``size`` x ``size`` input."""
        return mbconv_macs(self.c_in, self.mid, self.c_out, self.k, self.stride, size, self.has_expand, self.use_se)

    def config(self) -> dict[str, Any]:
        """ProxylessNAS's ``MBInvertedConvLayer`` entry of ``net.config``."""
        return {"name": "MBInvertedConvLayer", "in_channels": self.c_in, "out_channels": self.c_out,
                "kernel_size": self.k, "stride": self.stride, "expand_ratio": self.expand_ratio,
                "mid_channels": self.mid}


@torch.no_grad()
def he_fout_init(net: nn.Module) -> None:
    """Initialise as upstream ``model_init='he_fout'`` (mit-han-lab/proxylessnas
    ``search/utils/my_modules.py`` ``MyNetwork.init_model`` with its default ``init_div_groups=False``;
    mit-han-lab/once-for-all ``ofa/utils/my_modules.py`` ``init_models``): every conv weight
    N(0, 2 / (k * k * out_channels)), depthwise included; conv biases 0; BN weight 1, bias 0; linear
    weight U(-1/sqrt(in), 1/sqrt(in)), bias 0. The draws come from torch's default generator, which
    the caller seeds from the purpose-derived seed (``infra.seeding.seeded_init``); modules in
    ``net.modules()`` order, so the result depends only on that seed and the architecture."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.normal_(0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            m.weight.fill_(1.0)
            m.bias.zero_()
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.size(1))
            m.weight.uniform_(-bound, bound)
            if m.bias is not None:
                m.bias.zero_()


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
