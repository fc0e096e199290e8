"""The DARTS candidate operations (Liu et al. 2019, ``operations.py``), shared by search and evaluation.

Search cells build them with ``affine=False`` and pools followed by a BN without affine parameters
(DARTS ``model_search.py``); evaluation cells with ``affine=True`` and bare pools (``model.py``).
Like the NAS-Bench-201 search cells (``nb201.py``), BN without affine parameters uses batch
statistics always: no running statistics averaged over a mixture of paths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gmnas_cli.infra.errors import ConfigError

# The canonical op order of the DARTS space (DARTS ``genotypes.PRIMITIVES``).
DARTS_OPS = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
             "dil_conv_3x3", "dil_conv_5x5"]


def bn(c: int, affine: bool) -> nn.BatchNorm2d:
    """BN; ``affine=False`` (search) also means batch statistics always (see the module docstring)."""
    return nn.BatchNorm2d(c, affine=affine, track_running_stats=affine)


class _ReLUFirst(nn.Sequential):
    """A sequence that starts with a ReLU; ``forward(x, x_relu)`` takes ``relu(x)`` computed
    already (a search cell shares one ReLU per node state among the ops reading it)."""

    def forward(self, x: torch.Tensor, x_relu: torch.Tensor | None = None) -> torch.Tensor:
        if x_relu is None:
            return super().forward(x)
        for layer in list(self)[1:]:
            x_relu = layer(x_relu)
        return x_relu


class ReLUConvBN(_ReLUFirst):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, k, stride, padding, bias=False),
                         bn(c_out, affine))


class DilConv(_ReLUFirst):
    """ReLU, depthwise dilated conv, pointwise conv, BN."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, dilation: int,
                 affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, k, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            bn(c_out, affine),
        )


class SepConv(_ReLUFirst):
    """Two stacked (ReLU, depthwise conv, pointwise conv, BN) blocks; only the first has the stride."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, k, stride, padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            bn(c_in, affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, k, 1, padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            bn(c_out, affine),
        )


class Identity(nn.Module):
    """``skip_connect`` with stride 1 (drop-path is not applied to it in evaluation cells)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """``none``: zeros with the output shape of a strided op."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1x1 stride-2 convs (``skip_connect`` in reduction cells)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ConfigError(f"FactorizedReduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = bn(c_out, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        h, w = x.shape[-2:]
        # Odd sizes (small images): pad the offset path so both halves have ceil(size / 2) pixels.
        y = F.pad(x[:, :, 1:, 1:], (0, w % 2, 0, h % 2))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(y)], dim=1))


def darts_op(name: str, c: int, stride: int, affine: bool) -> nn.Module:
    """One DARTS op on ``c`` channels (DARTS ``operations.OPS``)."""
    if name == "none":
        return Zero(stride)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    if name == "sep_conv_3x3":
        return SepConv(c, c, 3, stride, 1, affine)
    if name == "sep_conv_5x5":
        return SepConv(c, c, 5, stride, 2, affine)
    if name == "dil_conv_3x3":
        return DilConv(c, c, 3, stride, 2, 2, affine)
    if name == "dil_conv_5x5":
        return DilConv(c, c, 5, stride, 4, 2, affine)
    raise ConfigError(f"space.ops: unknown DARTS op {name!r}; valid: {', '.join(DARTS_OPS)}")


def search_op(name: str, c: int, stride: int) -> nn.Module:
    """A search-cell op: ``affine=False``, pools followed by BN(affine=False) (DARTS ``MixedOp``)."""
    op = darts_op(name, c, stride, affine=False)
    if "pool" in name:
        op = nn.Sequential(op, bn(c, affine=False))
    return op


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Zero whole samples with probability ``p`` and rescale the rest (DARTS ``utils.drop_path``)."""
    if p <= 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask
