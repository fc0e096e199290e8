"""DARTS (Liu et al. 2019): continuous relaxation, bilevel alpha updates on the other data half.

``algo.order=1`` is first order (alpha gradient at the current weights). The second-order
variant (unrolled model, finite-difference Hessian-vector product) is ``DartsSecondOrder``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from gmnas_cli.algorithms.base import ALGORITHMS, Algorithm, Batch, LossFn, forward_loss
from gmnas_cli.algorithms.darts2 import second_order_step
from gmnas_cli.infra.distributed import shard_grads


@ALGORITHMS.register("darts", keys=("order", "unrolled_eps", "unrolled_step"))
class Darts(Algorithm):
    name = "darts"
    label = "DARTS"
    names_order = True  # ``algo.order`` is part of its experiment name and report label (paper Table 4)

    @classmethod
    def experiment_label(cls, cfg: Any) -> str:
        """``darts``, or ``darts2`` for the second-order variant."""
        return str(cfg.algo.name) + ("2" if cls.names_order and int(cfg.algo.order) == 2 else "")

    @classmethod
    def report_label(cls, get: Callable[[str, Any], Any], always_variant: bool = False) -> str:
        """``DARTS``, ``DARTS (2nd)``; with ``always_variant`` also ``DARTS (1st)`` (paper Table 4)."""
        second = get("algo.order", 1) == 2
        if not cls.names_order or not (always_variant or second):
            return cls.label
        return f"{cls.label} (2nd)" if second else f"{cls.label} (1st)"

    def arch_step(self, train_batch: Batch, val_batch: Batch, loss_fn: LossFn,
                  w_optimizer: torch.optim.Optimizer, gen: torch.Generator) -> torch.Tensor | float | None:
        if self.cfg.order == 2:
            return self._second_order_step(train_batch, val_batch, loss_fn, w_optimizer)
        self.arch_optimizer.zero_grad(set_to_none=True)
        weights, active = self.train_weights(gen)
        # Only alpha's gradient is used: no weight gradients are computed (same step, cheaper).
        # Data parallel: per shard, averaged over shards and ranks (gmnas_cli/infra/distributed.py).
        (self.alpha.grad,), loss = shard_grads(lambda b: forward_loss(self.net, b, weights, active, loss_fn), val_batch, [self.alpha], self.net)
        self.arch_optimizer.step()
        self.net.zero_grad(set_to_none=True)
        return loss.detach()  # a tensor: no host sync per step

    def _second_order_step(self, train_batch: Batch, val_batch: Batch, loss_fn: LossFn,
                           w_optimizer: torch.optim.Optimizer) -> float:
        return second_order_step(self, train_batch, val_batch, loss_fn, w_optimizer)
