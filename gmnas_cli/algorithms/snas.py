"""SNAS (Xie et al. 2019): DARTS with a Gumbel-softmax sampling hook.

Every forward pass draws per edge ``softmax((alpha + G) / tau)`` over the enabled ops only
(disabled ops get exactly 0 and are never computed), G ~ Gumbel(0, 1) from the passed generator.
alpha is trained bilevel by Adam on the architecture half (docs/method-facts.md), through the sample. The
temperature anneals linearly from ``tau_max`` to ``tau_min`` as the official GM-NAS
``TempScheduler``: tau(e) = tau_min + (1 - e/T)(tau_max - tau_min), over the whole run in the
warmup/split phase (T = all epochs; children inherit the parent's epoch) and restarted over the
search epochs (official ``TempScheduler(total_epoch - end_epoch)``). The derived architecture is
the argmax of alpha (DARTS' rule).
"""

from __future__ import annotations

import torch

from gmnas_cli.algorithms.base import ALGORITHMS
from gmnas_cli.algorithms.darts import Darts
from gmnas_cli.config.schema import AlgoConfig
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.spaces.base import Active, SearchSpace, Supernet


def gumbel_noise(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Gumbel(0, 1) noise shaped like ``like``, drawn on CPU from ``gen`` (exact resume)."""
    u = torch.rand(like.shape, generator=gen, dtype=torch.float64).clamp_(1e-20, 1.0 - 1e-12)
    return (-torch.log(-torch.log(u))).to(device=like.device, dtype=like.dtype)


def gm_nas_tau(tau_max: float, tau_min: float, epoch: int, total: int) -> float:
    """Official GM-NAS ``TempScheduler.decay_whole_process``: (1 - e/T)(max - min) + min, >= min."""
    if total <= 0:
        return tau_max
    return max((1.0 - epoch / total) * (tau_max - tau_min) + tau_min, tau_min)


def linear_tau(tau_max: float, tau_min: float, epoch: int, total: int) -> float:
    """tau_max at the first epoch, tau_min at the last (AutoDL GDAS: max - (max-min) e/(T-1))."""
    if total <= 1:
        return tau_max
    return tau_max - (tau_max - tau_min) * min(epoch, total - 1) / (total - 1)


@ALGORITHMS.register("snas", keys=("order", "tau_max", "tau_min"))
class Snas(Darts):
    """Relaxed Gumbel-softmax samples over the enabled ops; alpha by Adam (first order)."""

    name = "snas"
    label = "SNAS"
    names_order = False  # first order only

    def __init__(self, cfg: AlgoConfig, space: SearchSpace, net: Supernet) -> None:
        if int(cfg.order) != 1:
            raise ConfigError(f"algo.order={cfg.order}: the second-order step is DARTS only (algo={cfg.name})")
        super().__init__(cfg, space, net)
        self.tau = float(cfg.tau_max)

    def tau_at(self, epoch: int, total_epochs: int) -> float:
        return gm_nas_tau(float(self.cfg.tau_max), float(self.cfg.tau_min), epoch, total_epochs)

    def epoch_start(self, epoch: int, total_epochs: int) -> None:
        super().epoch_start(epoch, total_epochs)
        self.tau = self.tau_at(epoch, total_epochs)

    def relaxed_sample(self, gen: torch.Generator) -> torch.Tensor:
        """``softmax((alpha + G) / tau)`` per edge; exactly 0 on disabled ops."""
        logits = (self.alpha + gumbel_noise(self.alpha, gen)) / self.tau
        return torch.softmax(logits.masked_fill(~self.mask, float("-inf")), dim=-1)

    def train_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        return self.relaxed_sample(gen), None

    def eval_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        """Supernet validation with the sampled networks it trains (our choice), detached."""
        w, active = self.train_weights(gen)
        return w.detach(), active

    def state_dict(self) -> dict:
        return {**super().state_dict(), "tau": self.tau}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.tau = float(state.get("tau", self.cfg.tau_max))

    def reset_arch(self) -> None:
        super().reset_arch()
        self.tau = float(self.cfg.tau_max)
