"""Ops of the MobileNet space: op names, the searchable block and ProxylessNAS's binary-gate gradient.

A block computes ``x + sum_k w_k * o_k(x)`` (no ``x`` term without a shortcut; ``o_zero = 0``)
over its active ops only. An active entry of type ``Gated`` selects binary gates (``full_v2``):
only the sampled op runs forward; with gate weights that require a gradient, backward recomputes
the other enabled ops on the saved input and gives ``dL/dw_k = <o_k(x), dL/dy>`` (``_GateGrad``).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import torch
from torch import nn

from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.spaces.base import weighted_sum
from gmnas_cli.spaces.mbconv.layers import MBConv

ZERO = "zero"
PROXYLESS_OPS = ["3x3_MBConv3", "3x3_MBConv6", "5x5_MBConv3", "5x5_MBConv6", "7x7_MBConv3", "7x7_MBConv6", ZERO]
_OP = re.compile(r"^(\d+)x(\d+)_MBConv(\d+)$")


def parse_op(name: str) -> tuple[int, int] | None:
    """``"5x5_MBConv6"`` -> (5, 6); ``"zero"`` -> None; anything else raises ConfigError."""
    if name == ZERO:
        return None
    m = _OP.match(name)
    if not m or m.group(1) != m.group(2) or int(m.group(1)) % 2 == 0 or int(m.group(3)) < 1:
        raise ConfigError(f"unknown MobileNet op {name!r}; valid: zero or KxK_MBConvE with an odd kernel K and "
                          f"expand ratio E >= 1 (e.g. {', '.join(PROXYLESS_OPS[:-1])})")
    return int(m.group(1)), int(m.group(3))


def op_name(k: int, e: int) -> str:
    return f"{k}x{k}_MBConv{e}"


class Gated(NamedTuple):
    """One block's binary-gate entry: ``sampled`` runs forward, ``enabled`` get gate gradients."""

    sampled: int
    enabled: tuple[int, ...]


class BlockSpec(NamedTuple):
    c_in: int
    c_out: int
    stride: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.c_in == self.c_out


class _GateGrad(torch.autograd.Function):
    """Identity on the sampled op's output ``y``; gate gradients ``<o_k(x), g>`` in backward.

    ProxylessNAS ``ArchGradientFunction`` / ``MixedEdge.run_backward`` (mode ``full_v2``): the
    other enabled ops are recomputed on the saved input under no_grad (BN in the net's mode),
    ``o_zero = 0``. The gates' values never enter the forward (the sampled gate is 1).
    """

    @staticmethod
    def forward(ctx, w: torch.Tensor, y: torch.Tensor, x: torch.Tensor, block: MixedBlock,  # type: ignore[override]
                row: int, gated: Gated) -> torch.Tensor:
        ctx.save_for_backward(w, y, x)
        ctx.block, ctx.row, ctx.gated = block, row, gated
        dev = x.device.type
        ctx.autocast = (dev, torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev))
        return y.clone()

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        w, y, x = ctx.saved_tensors
        block, row, gated = ctx.block, ctx.row, ctx.gated
        grad_w = None
        if ctx.needs_input_grad[0]:
            grad_w = torch.zeros_like(w)
            dev, enabled, dtype = ctx.autocast  # recompute under the forward's autocast (bf16 on CUDA)
            with torch.no_grad(), torch.autocast(dev, dtype=dtype, enabled=enabled):
                for k in gated.enabled:
                    if block.is_zero[k]:
                        continue  # o_zero = 0
                    out = y if k == gated.sampled else block.ops[block.op_key[k]](x)
                    grad_w[row, k] = (out.float() * g.float()).sum().to(w.dtype)
        return grad_w, g, None, None, None, None


class MixedBlock(nn.Module):
    """One searchable block: every structurally available op (own weights) and the shortcut."""

    def __init__(self, spec: BlockSpec, op_names: list[str]) -> None:
        super().__init__()
        self.spec = spec
        self.op_key: list[str] = []
        self.is_zero: list[bool] = []
        ops: dict[str, nn.Module] = {}
        for name in op_names:
            parsed = parse_op(name)
            self.is_zero.append(parsed is None)
            key = name.replace("x", "_")  # ModuleDict keys: no dots, stable in checkpoints
            self.op_key.append(key)
            if parsed is not None:
                ops[key] = MBConv.proxyless(spec.c_in, spec.c_out, parsed[0], spec.stride, parsed[1])
        self.ops = nn.ModuleDict(ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, row: int, active: Any) -> torch.Tensor:
        n_ops = weights.shape[-1]
        residual = self.spec.residual
        if isinstance(active, Gated):
            k = active.sampled
            if self.is_zero[k]:  # upstream: a Zero block returns its input, no gate gradient
                return x
            y = self.ops[self.op_key[k]](x)
            if weights.requires_grad:
                y = _GateGrad.apply(weights, y, x.detach(), self, row, active)
            return x + y if residual else y
        ks = [k for k in active if not self.is_zero[k]]
        if not ks:
            if not residual:
                raise RuntimeError("a block without shortcut got no computed op")
            return x
        y = weighted_sum(weights, [row * n_ops + k for k in ks], [self.ops[self.op_key[k]](x) for k in ks])
        return x + y if residual else y
