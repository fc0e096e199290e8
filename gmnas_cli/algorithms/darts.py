"""DARTS (Liu et al. 2019): continuous relaxation, bilevel alpha updates on the other data half.

``algo.order=1`` is first order (alpha gradient at the current weights). The second-order
variant (unrolled model, finite-difference Hessian-vector product) is ``DartsSecondOrder``.
"""

from __future__ import annotations

import torch

from gmnas_cli.algorithms.base import ALGORITHMS, Algorithm, Batch, LossFn, forward_loss
from gmnas_cli.algorithms.darts2 import second_order_step
from gmnas_cli.infra.distributed import shard_grads


@ALGORITHMS.register("darts")
class Darts(Algorithm):
    name = "darts"

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
