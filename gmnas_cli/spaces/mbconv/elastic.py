"""Elastic MobileNetV3 layers (OFA: mit-han-lab/once-for-all, ``ofa/utils/layers.py`` and
``elastic_nn/modules/dynamic_layers.py``), rewritten without the ``ofa`` package.

A dynamic layer holds the largest weight and computes a smaller one from it:
- elastic kernel: the centre ``k x k`` crop of the 7x7 depthwise weight, transformed by learned
  ``7to5`` / ``5to3`` matrices (``KERNEL_TRANSFORM_MODE=1``: chained, identity-initialised);
- elastic width (expand ratio): the first channels, after ``reorganize_middle`` sorted them by
  L1 importance of the point-linear weight (OFA ``re_organize_middle_weights``);
- BN of a narrower layer uses the first running statistics and affine parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """OFA/TF ``make_divisible``: round to a multiple of ``divisor``, never below 90% of ``v``."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


def activation(name: str) -> nn.Module:
    """``relu`` or ``h_swish`` (OFA MobileNetV3: relu in the first stages, h_swish later)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


def sub_filter_start_end(kernel_size: int, sub_kernel_size: int) -> tuple[int, int]:
    center = kernel_size // 2
    dev = sub_kernel_size // 2
    return center - dev, center + dev + 1


class DynamicBatchNorm2d(nn.Module):
    """BN over the first ``C`` features of a wider BN (OFA ``DynamicBatchNorm2d``).

    ``momentum=None`` on the inner BN gives a cumulative average (BN recalibration).
    """

    def __init__(self, max_features: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(max_features)  # OFA MobileNetV3: momentum 0.1, eps 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.size(1)
        bn = self.bn
        if bn.training:
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        else:
            factor = 0.0
        return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                            bn.training, factor, bn.eps)


class DynamicSE(nn.Module):
    """Squeeze-and-excitation on the first channels (OFA ``DynamicSE``: reduction 4, divisor 8)."""

    REDUCTION = 4

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        mid = make_divisible(max_channels // self.REDUCTION)
        self.reduce = nn.Conv2d(max_channels, mid, 1, bias=True)
        self.expand = nn.Conv2d(mid, max_channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.size(1)
        mid = make_divisible(c // self.REDUCTION)
        y = x.mean((2, 3), keepdim=True)
        y = F.relu(F.conv2d(y, self.reduce.weight[:mid, :c], self.reduce.bias[:mid]), inplace=True)
        y = F.hardsigmoid(F.conv2d(y, self.expand.weight[:c, :mid], self.expand.bias[:c]), inplace=True)
        return x * y


class DynamicDepthwise(nn.Module):
    """Depthwise conv with elastic kernel: centre crop of the largest weight plus learned
    transforms ``{src}to{dst}_matrix`` (OFA ``DynamicSeparableConv2d``, transform mode 1)."""

    def __init__(self, max_channels: int, kernel_sizes: list[int], stride: int) -> None:
        super().__init__()
        self.kernel_sizes = sorted(kernel_sizes)
        self.stride = stride
        k = self.kernel_sizes[-1]
        self.conv = nn.Conv2d(max_channels, max_channels, k, stride, k // 2, groups=max_channels, bias=False)
        self.transforms = nn.ParameterDict()
        for src, dst in zip(self.kernel_sizes[:0:-1], self.kernel_sizes[-2::-1]):
            self.transforms[f"{src}to{dst}"] = nn.Parameter(torch.eye(dst * dst))  # identity start (OFA)

    def active_filter(self, channels: int, kernel_size: int) -> torch.Tensor:
        """The ``channels x 1 x k x k`` filter of kernel size ``k`` (crop, transform, repeat)."""
        f = self.conv.weight[:channels]
        ks = self.kernel_sizes
        for i in range(len(ks) - 1, 0, -1):
            src = ks[i]
            if src <= kernel_size:
                break
            dst = ks[i - 1]
            a, b = sub_filter_start_end(src, dst)
            f = f[:, :, a:b, a:b].reshape(-1, dst * dst)
            f = F.linear(f, self.transforms[f"{src}to{dst}"]).view(channels, 1, dst, dst)
        return f

    def forward(self, x: torch.Tensor, kernel_size: int) -> torch.Tensor:
        c = x.size(1)
        return F.conv2d(x, self.active_filter(c, kernel_size), None, self.stride, kernel_size // 2, 1, c)


class DynamicMBConv(nn.Module):
    """Inverted residual block with elastic kernel and expand ratio (OFA ``DynamicMBConvLayer``),
    plus the identity shortcut when stride 1 and in = out (OFA ``ResidualBlock``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: list[int], expand_ratios: list[float],
                 stride: int, act: str, use_se: bool) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.expand_ratios = sorted(expand_ratios)
        self.stride, self.act_name, self.use_se = stride, act, use_se
        max_mid = self.mid_channels(self.expand_ratios[-1])
        self.expand_conv = nn.Conv2d(in_channels, max_mid, 1, bias=False)
        self.expand_bn = DynamicBatchNorm2d(max_mid)
        self.depthwise = DynamicDepthwise(max_mid, kernel_sizes, stride)
        self.depthwise_bn = DynamicBatchNorm2d(max_mid)
        self.se = DynamicSE(max_mid) if use_se else None
        self.project = nn.Conv2d(max_mid, out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_channels)
        self.act = activation(act)
        self.residual = stride == 1 and in_channels == out_channels

    def mid_channels(self, expand: float) -> int:
        """OFA: ``make_divisible(round(in_channels * e), 8)``."""
        return make_divisible(round(self.in_channels * expand))

    def forward(self, x: torch.Tensor, kernel_size: int, expand: float) -> torch.Tensor:
        mid = self.mid_channels(expand)
        h = self.act(self.expand_bn(F.conv2d(x, self.expand_conv.weight[:mid])))
        h = self.act(self.depthwise_bn(self.depthwise(h, kernel_size)))
        if self.se is not None:
            h = self.se(h)
        h = self.project_bn(F.conv2d(h, self.project.weight[:, :mid]))
        return x + h if self.residual else h

    @torch.no_grad()
    def reorganize_middle(self, expand_stage: int = 0) -> None:
        """Sort the middle channels by L1 importance of the projection weight, keeping the
        channel groups of earlier expand phases first (OFA ``re_organize_middle_weights``)."""
        importance = self.project.weight.abs().sum(dim=(0, 2, 3))
        if expand_stage > 0:
            widths = [self.mid_channels(e) for e in sorted(self.expand_ratios, reverse=True)]
            right, base = len(importance), -len(widths) * 1e5
            for i in range(expand_stage + 1):
                left = widths[i]
                importance[left:right] += base
                base += 1e5
                right = left
        idx = torch.sort(importance, descending=True).indices
        self.project.weight.copy_(self.project.weight[:, idx])
        _permute_bn(self.depthwise_bn.bn, idx)
        self.depthwise.conv.weight.copy_(self.depthwise.conv.weight[idx])
        if self.se is not None:
            se = self.se
            se.expand.weight.copy_(se.expand.weight[idx])
            se.expand.bias.copy_(se.expand.bias[idx])
            se.reduce.weight.copy_(se.reduce.weight[:, idx])
            se_idx = torch.sort(se.expand.weight.abs().sum(dim=(0, 2, 3)), descending=True).indices
            se.expand.weight.copy_(se.expand.weight[:, se_idx])
            se.reduce.weight.copy_(se.reduce.weight[se_idx])
            se.reduce.bias.copy_(se.reduce.bias[se_idx])
        _permute_bn(self.expand_bn.bn, idx)
        self.expand_conv.weight.copy_(self.expand_conv.weight[idx])


def _permute_bn(bn: nn.BatchNorm2d, idx: torch.Tensor) -> None:
    for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        t.copy_(t[idx])


# -- static layers (extracted subnets, retraining) --------------------------------------------

class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int, act: str | None, bn: bool = True,
                 groups: int = 1) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)]
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        if act is not None:
            layers.append(activation(act))
        super().__init__(*layers)


class SE(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = make_divisible(channels // DynamicSE.REDUCTION)
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.reduce(x.mean((2, 3), keepdim=True)), inplace=True)
        return x * F.hardsigmoid(self.expand(y), inplace=True)


class MBConv(nn.Module):
    """A static inverted residual block (OFA ``MBConvLayer`` in a ``ResidualBlock``)."""

    def __init__(self, cin: int, mid: int, cout: int, k: int, stride: int, act: str, use_se: bool,
                 expand: bool = True) -> None:
        super().__init__()
        self.expand = ConvBNAct(cin, mid, 1, 1, act) if expand else None
        self.depthwise = ConvBNAct(mid, mid, k, stride, act, groups=mid)
        self.se = SE(mid) if use_se else None
        self.project = ConvBNAct(mid, cout, 1, 1, None)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.depthwise(h)
        if self.se is not None:
            h = self.se(h)
        h = self.project(h)
        return x + h if self.residual else h
