"""Elastic MobileNetV3 layers (OFA: mit-han-lab/once-for-all,
``elastic_nn/modules/dynamic_layers.py`` and ``dynamic_op.py``), rewritten without the ``ofa``
package; ``DynamicMBConv.copy_active_to`` fills the static ``MBConv`` of ``mbconv/layers.py`` (OFA
``DynamicMBConvLayer.get_active_subnet``).

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

from gmnas_cli.spaces.mbconv.layers import OFA_BN_EPS, SE_REDUCTION, MBConv, activation, make_divisible


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
        self.bn = nn.BatchNorm2d(max_features, eps=OFA_BN_EPS)  # OFA MobileNetV3: momentum 0.1, eps 1e-5

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

    REDUCTION = SE_REDUCTION

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
        self.project_bn = nn.BatchNorm2d(out_channels, eps=OFA_BN_EPS)
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
    def copy_active_to(self, static: MBConv, kernel_size: int, expand: float) -> None:
        """Fill the static block ``static`` of this kernel and expand ratio with the active weights: the first channels, the
        transformed kernel, the first BN statistics (OFA ``DynamicMBConvLayer.get_active_subnet``)."""
        mid = self.mid_channels(expand)
        static.expand[0].weight.copy_(self.expand_conv.weight[:mid])
        _copy_bn(static.expand[1], self.expand_bn.bn, mid)
        static.depthwise[0].weight.copy_(self.depthwise.active_filter(mid, kernel_size))
        _copy_bn(static.depthwise[1], self.depthwise_bn.bn, mid)
        if self.se is not None:
            smid = static.se.reduce.out_channels
            static.se.reduce.weight.copy_(self.se.reduce.weight[:smid, :mid])
            static.se.reduce.bias.copy_(self.se.reduce.bias[:smid])
            static.se.expand.weight.copy_(self.se.expand.weight[:mid, :smid])
            static.se.expand.bias.copy_(self.se.expand.bias[:mid])
        static.project[0].weight.copy_(self.project.weight[:, :mid])
        static.project[1].load_state_dict(self.project_bn.state_dict())

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


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, c: int) -> None:
    for t, u in ((dst.weight, src.weight), (dst.bias, src.bias), (dst.running_mean, src.running_mean),
                 (dst.running_var, src.running_var)):
        t.copy_(u[:c])
