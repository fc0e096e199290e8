"""Base weight-sharing algorithm with hooks (docs/design.md).

An algorithm owns the architecture parameters and decides, for every forward pass, the edge
weights and which ops are computed (relaxed, sampled or single path), always restricted to the
supernet's op mask. Variants override hooks: ``train_weights`` (weight training),
``score_weights`` (the other edges' weighting while GM scores one edge), ``arch_step`` and
``derive``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from gmnas_cli.config.derived import run_epochs
from gmnas_cli.config.schema import AlgoConfig
from gmnas_cli.infra.registry import Registry
from gmnas_cli.spaces.base import Active, Arch, SearchSpace, Supernet

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Algorithm:
    """Defaults: continuous relaxation (masked softmax of alpha) and no architecture step.

    The pipeline asks an algorithm only through the attributes and methods declared here (docs/design.md,
    "The plugin contract"); each says when it is asked and what the default is.
    """

    name = "base"
    label = ""  # ``gmnas report``: the name of its rows (paper tables), e.g. "DARTS"; "": the name in capitals
    has_arch_params = True  # False: no alpha to train or save (RSPS, OFA); the search trains weights only
    # The spaces this algorithm can search (None: every space that accepts it, ``SearchSpace.algorithms``).
    spaces: tuple[str, ...] | None = None
    # The current sampling temperature, recorded with each epoch (``curve.csv``); None: no temperature.
    tau: float | None = None

    def __init__(self, cfg: AlgoConfig, space: SearchSpace, net: Supernet) -> None:
        self.cfg = cfg
        self.space = space
        self.net = net
        device = net.mask_tensor.device
        # Zero until ``init_alpha`` draws DARTS' 1e-3 * N(0, 1) (Liu et al. 2019, official GM-NAS).
        self.alpha = torch.zeros(len(space.edges), len(space.ops), device=device, requires_grad=True)
        self.arch_optimizer = torch.optim.Adam(
            [self.alpha], lr=cfg.arch_lr, betas=tuple(cfg.arch_betas), weight_decay=cfg.arch_weight_decay
        )
        self.epoch = 0
        self.total_epochs = 1

    def init_alpha(self, gen: torch.Generator) -> None:
        """alpha = 1e-3 * N(0, 1) from ``gen`` (DARTS' initialisation; algorithms without
        architecture parameters keep zeros)."""
        if not self.has_arch_params:
            return
        with torch.no_grad():
            self.alpha.copy_(1e-3 * torch.randn(self.alpha.shape, generator=gen).to(self.alpha.device))

    # -- mask helpers -----------------------------------------------------------------------
    @property
    def mask(self) -> torch.Tensor:
        return self.net.mask_tensor

    def masked_logits(self) -> torch.Tensor:
        return self.alpha.masked_fill(~self.mask, float("-inf"))

    def probabilities(self) -> torch.Tensor:
        """Masked softmax of alpha: disabled ops get exactly zero."""
        return torch.softmax(self.masked_logits(), dim=-1)

    # -- hooks ------------------------------------------------------------------------------
    def epoch_start(self, epoch: int, total_epochs: int) -> None:
        """Called before each epoch (temperature schedules)."""
        self.epoch, self.total_epochs = epoch, total_epochs

    def train_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        """Edge weights and active ops for one weight-training step (default: relaxed)."""
        return self.probabilities(), None

    def eval_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        """Edge weights for one supernet validation batch (default: the relaxed mixture)."""
        return self.probabilities().detach(), None

    def score_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        """Other edges' weighting during GM scoring (docs/method-facts.md): the algorithm's own, detached."""
        w, active = self.train_weights(gen)
        return w.detach(), active

    def weight_loss(self, net: nn.Module, batch: Batch, weights: torch.Tensor, active: Active | None,
                    loss_fn: LossFn, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, loss) of one weight step (OFA overrides: distillation, several subnets)."""
        logits = net(batch[0], weights, active)
        return logits, loss_fn(logits, batch[1])

    def prepare(self, trainer: object, workdir: object) -> None:
        """Called by ``gmnas warmup`` before the root trains (OFA: train the full network first)."""

    def arch_step_due(self, epoch: int, step: int, steps_per_epoch: int) -> bool:
        """Whether weight step ``step`` of ``epoch`` (phase-relative) is preceded by an architecture
        step: after every ``algo.arch_every``-th weight step of the phase (1: before every step)."""
        every = int(getattr(self.cfg, "arch_every", 1) or 1)
        if every <= 1:
            return True
        done = epoch * steps_per_epoch + step  # weight steps before this one
        return done > 0 and done % every == 0

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Algorithm-specific checks of the composed config, called by ``pipeline/validate.py`` at start-up,
        before anything is written. Default: none."""

    @classmethod
    def experiment_label(cls, cfg: Any) -> str:
        """The algorithm's part of a default experiment name (``ExperimentDir``, when ``name=`` is empty)."""
        return str(cfg.algo.name)

    @classmethod
    def report_label(cls, get: Callable[[str, Any], Any], always_variant: bool = False) -> str:
        """The row name in ``gmnas report`` tables for an experiment whose flattened config ``get`` reads
        (``get("algo.order", 1)``); ``always_variant``: name the variant even where it is the default."""
        return cls.label or cls.name.upper()

    @classmethod
    def search_leaf(cls, rt: Any, tree: Any, leaf: Any) -> dict | None:
        """``gmnas search`` on one leaf, for algorithms with a leaf pipeline of their own (OFA: progressive
        shrinking, then evolution); returns the leaf's result. Default None: the stage's own search
        (``search_epochs`` of ``fit``, then ``derive``)."""
        return None

    def derive_batch_size(self, train_batch_size: int) -> int:
        """Minibatch size of the architecture-half batches ``derive`` reads; asked by ``gmnas search``
        before each leaf's derivation. Default: ``train.batch_size``."""
        return train_batch_size

    @classmethod
    def splitting_schedule_epochs(cls, cfg: Any) -> int:
        """Length of the warmup/split phase's lr cosine and temperature schedule: the whole run, as the
        official root scheduler (``CosineAnnealingLR(T_max = last split epoch + search epochs)``; SNAS
        ``TempScheduler(args.epochs)``); children inherit the parent's epoch and so its schedule."""
        return run_epochs(cfg)

    def arch_step(self, train_batch: Batch, val_batch: Batch, loss_fn: LossFn,
                  w_optimizer: torch.optim.Optimizer, gen: torch.Generator) -> float | None:
        """One architecture update; returns the validation loss it used (a float or a detached
        tensor, which needs no host sync; None: no update)."""
        return None

    def derive(self, val_batches: Callable[[], Iterable[Batch]] | None = None,
               gen: torch.Generator | None = None) -> Arch:
        """The final architecture of this (sub-)supernet (``val_batches``: architecture-half
        minibatches, ``gen``: seeded draws, for derivations that score sampled paths)."""
        return self.space.derive(self.probabilities().detach(), self.net.mask)

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"alpha": self.alpha.detach().cpu().clone(), "arch_optimizer": self.arch_optimizer.state_dict(),
                "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.alpha.copy_(state["alpha"].to(self.alpha.device))
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.epoch = state.get("epoch", 0)

    def reset_arch(self) -> None:
        """Back to uniform alpha and a fresh optimizer (used by restart)."""
        with torch.no_grad():
            self.alpha.zero_()
        self.arch_optimizer = torch.optim.Adam(
            [self.alpha], lr=self.cfg.arch_lr, betas=tuple(self.cfg.arch_betas),
            weight_decay=self.cfg.arch_weight_decay)


ALGORITHMS: Registry[type[Algorithm]] = Registry("algo", catalog="gmnas_cli.algorithms.catalog")


def build_algorithm(cfg: AlgoConfig, space: SearchSpace, net: Supernet) -> Algorithm:
    return ALGORITHMS[cfg.name](cfg, space, net)


def forward_loss(net: nn.Module, batch: Batch, weights: torch.Tensor, active: Active | None,
                 loss_fn: LossFn) -> torch.Tensor:
    x, y = batch
    return loss_fn(net(x, weights, active), y)
