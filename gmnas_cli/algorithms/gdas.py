"""GDAS (Dong & Yang 2019): SNAS's sampler made hard, with straight-through gradients.

Per edge, ``probs = softmax((log_softmax(alpha) + G) / tau)`` over the enabled ops, the op
``k = argmax probs`` is the only one computed (``active = [k]``), and its weight is
``1 - probs[k].detach() + probs[k]``: value exactly 1 (0 elsewhere, disabled ops included),
gradient of ``probs[k]`` to every enabled alpha of the edge. AutoDL's GDAS additionally adds the
zero-valued weights of the unsampled ops to the edge output; we do not (only the sampled op's
weight carries gradient). tau anneals linearly from ``tau_max`` to ``tau_min`` (GDAS: 10 -> 0.1).
"""

from __future__ import annotations

import torch

from gmnas_cli.algorithms.base import ALGORITHMS
from gmnas_cli.algorithms.snas import Snas, gumbel_noise, linear_tau
from gmnas_cli.spaces.base import Active


@ALGORITHMS.register("gdas", keys=("order", "tau_max", "tau_min"))
class Gdas(Snas):
    """Gumbel-max one-hot paths with straight-through gradients; alpha by Adam."""

    name = "gdas"
    label = "GDAS"

    def tau_at(self, epoch: int, total_epochs: int) -> float:
        """AutoDL GDAS: tau_max - (tau_max - tau_min) e / (T - 1)."""
        return linear_tau(float(self.cfg.tau_max), float(self.cfg.tau_min), epoch, total_epochs)

    def hard_sample(self, gen: torch.Generator) -> tuple[torch.Tensor, list[list[int]]]:
        """Straight-through one-hot weights and the single sampled op index of every edge."""
        logits = torch.log_softmax(self.masked_logits(), dim=-1) + gumbel_noise(self.alpha, gen)
        probs = torch.softmax((logits / self.tau).masked_fill(~self.mask, float("-inf")), dim=-1)
        index = probs.detach().argmax(dim=-1, keepdim=True)
        one_hot = torch.zeros_like(probs).scatter_(-1, index, 1.0)
        return one_hot - probs.detach() + probs, [[int(k)] for k in index.view(-1).tolist()]

    def train_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        return self.hard_sample(gen)
