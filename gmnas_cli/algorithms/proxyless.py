"""ProxylessNAS (Cai et al. 2019) with binary gates, mode ``full_v2`` (docs/mobilenet.md).

Every weight step trains one path sampled from the masked softmax of alpha (ProxylessNAS
``binarize``: ``multinomial(probs * enc)``); only the sampled op of each block is computed. The
architecture step (Adam 1e-3, betas (0, 0.999), every ``algo.arch_every`` = 5 weight steps on a
held-out batch, none in the first epoch of a phase) samples a path again; its backward gives
every enabled op's gate gradient ``dL/dg_k = <o_k(x), dL/dy>`` (the space's ``Gated`` entries)
and alpha's gradient ``sum_j dL/dg_j p_j (delta_ij - p_i)``, which autograd produces by passing
the probabilities themselves as the gate tensor (``set_arch_param_grad``). A block whose sampled
op is ``zero`` gives alpha no gradient (upstream). Supernet validation and derivation use the
masked argmax path (upstream ``set_chosen_op_active``).

Optional hardware regulariser (``algo.target=flops|latency``, off by default as in GM's released
run): the expected cost ``E = fixed + sum_blocks sum_ops p * cost`` in MFLOPs (MACs / 1e6, the
space's analytic count) or ms (a ProxylessNAS-style LUT from ``algo.latency_table``), with
``mul#log``: ``reg_alpha * CE * (log E / log target_ref) ** reg_beta`` or ``add#linear``:
``CE + reg_lambda * (E - target_ref) / target_ref``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from gmnas_cli.algorithms.base import ALGORITHMS, Algorithm, Batch, LossFn
from gmnas_cli.algorithms.latency import latency_costs
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.spaces import build_space
from gmnas_cli.spaces.base import Active, Arch, SearchSpace, Supernet
from gmnas_cli.spaces.mobilenet.space import Gated


@ALGORITHMS.register("proxyless", keys=("target", "target_ref", "reg_form", "reg_alpha", "reg_beta", "reg_lambda",
                                           "latency_table"))
class Proxyless(Algorithm):
    name = "proxyless"
    label = "ProxylessNAS"
    spaces = ("mobilenet",)  # binary gates over MBConv blocks with analytic per-op MACs

    def __init__(self, cfg: Any, space: SearchSpace, net: Supernet) -> None:
        super().__init__(cfg, space, net)
        self.costs: tuple[float, torch.Tensor] | None = None
        target = str(cfg.target)
        if target == "flops":
            self.costs = (space.fixed_macs() / 1e6, space.op_macs().float() / 1e6)
        elif target == "latency":
            self.costs = latency_costs(space, Path(str(cfg.latency_table)))
        if self.costs is not None:
            self.costs = (self.costs[0], self.costs[1].to(self.alpha.device))

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Bad regulariser settings, found before anything is written."""
        a = cfg.algo
        if str(a.target) == "latency":
            path = Path(str(a.latency_table))
            if not str(a.latency_table) or not path.is_file():
                raise ConfigError(f"algo.latency_table={str(a.latency_table)!r} does not exist; algo.target=latency "
                                  f"needs a latency look-up table YAML (ProxylessNAS mobile_trim.yaml layout)")

            d = cfg.dataset  # every key the space needs must be in the table (ConfigError names the first missing)
            latency_costs(build_space(cfg.space, d.num_classes, d.in_channels, d.image_size), path)

    # -- paths ------------------------------------------------------------------------------
    def sample_path(self, gen: torch.Generator) -> list[int]:
        """One op index per block, drawn from the masked softmax (disabled ops have probability 0)."""
        probs = self.probabilities().detach().float().cpu()
        return [int(k) for k in torch.multinomial(probs, 1, generator=gen).view(-1).tolist()]

    def path_weights(self, ops: list[int], gated: bool = True) -> tuple[torch.Tensor, Active]:
        """One-hot weights of a path; ``gated``: binary-gate entries (the sampled op's output is used
        as is, no multiply by its gate of 1), else plain op lists (e.g. for GM's per-op forcing)."""

        w = torch.zeros(len(self.space.edges), len(self.space.ops), device=self.alpha.device)
        w[torch.arange(len(ops)), torch.tensor(ops)] = 1.0
        return w, [Gated(k, (k,)) for k in ops] if gated else [[k] for k in ops]

    def train_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        return self.path_weights(self.sample_path(gen))

    def score_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        """GM: one sampled path for the other blocks (as op lists, so the scored block can be forced)."""
        return self.path_weights(self.sample_path(gen), gated=False)

    def eval_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        """The most likely path (upstream validation: ``set_chosen_op_active``)."""
        arch = self.space.derive(self.probabilities().detach(), self.net.mask)
        return self.path_weights([self.space.ops.index(arch[e]) for e in self.space.edges])

    # -- architecture step ------------------------------------------------------------------
    def arch_step_due(self, epoch: int, step: int, steps_per_epoch: int) -> bool:
        """After every ``arch_every``-th weight step, never in the phase's first epoch (upstream)."""
        return epoch > 0 and super().arch_step_due(epoch, step, steps_per_epoch)

    def gated_active(self, gen: torch.Generator) -> Active:
        enabled = self.net.enabled
        return [Gated(k, tuple(enabled[i])) for i, k in enumerate(self.sample_path(gen))]

    def expected_cost(self, probs: torch.Tensor) -> torch.Tensor:
        fixed, table = self.costs  # type: ignore[misc]
        return fixed + (probs * table).sum()

    def regularised(self, ce: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        if self.costs is None:
            return ce
        cfg = self.cfg
        expected = self.expected_cost(probs)
        ref = float(cfg.target_ref)
        if str(cfg.reg_form) == "mul#log":
            return float(cfg.reg_alpha) * ce * (torch.log(expected) / math.log(ref)) ** float(cfg.reg_beta)
        return ce + float(cfg.reg_lambda) * (expected - ref) / ref

    def arch_step(self, train_batch: Batch, val_batch: Batch, loss_fn: LossFn,
                  w_optimizer: torch.optim.Optimizer, gen: torch.Generator) -> float | None:
        self.arch_optimizer.zero_grad(set_to_none=True)
        probs = self.probabilities()
        x, y = val_batch
        ce = loss_fn(self.net(x, probs, self.gated_active(gen)), y)
        loss = self.regularised(ce, probs)
        (grad,) = torch.autograd.grad(loss, [self.alpha], allow_unused=True)
        self.alpha.grad = torch.zeros_like(self.alpha) if grad is None else grad
        self.arch_optimizer.step()
        self.net.zero_grad(set_to_none=True)
        return float(ce.detach())

    def derive(self, val_batches=None, gen: torch.Generator | None = None) -> Arch:
        return self.space.derive(self.probabilities().detach(), self.net.mask)
