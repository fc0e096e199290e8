"""``algo=ofa``: Once-for-All progressive shrinking (Cai et al. 2020) on ``space=ofa_mbv3``, as the
official GM-OFA fork runs it (docs/ofa.md).

Phases (each samples one subnet per step from a seeded generator, uniformly inside the op mask):

- ``full``: the full network (largest kernel of the mask, largest expand ratio, largest depth), no
  KD; trained by ``prepare`` at the start of ``gmnas warmup`` (GM fork ``--task normal``); its
  weights become the KD teacher (kept in this algorithm's state, so every node carries it).
- ``kernel``: kernels inside the mask, largest expand and depth (GM fork ``--task kernel``): the
  warmup and split phases, where GM scores kernel sizes.
- ``depth0, depth1, ...``: depths from the largest 2, 3, ... values of ``space.depths``.
- ``expand0, expand1, ...``: expand ratios from the largest 2, 3, ...; each starts by sorting the
  middle channels by importance (``reorganize_middle``).

Every phase but ``full`` adds knowledge distillation from the teacher (OFA: teacher in train mode,
soft cross-entropy, ``loss = (kd_ratio * KD + CE) * 2 / (kd_ratio + 1)``, CE label-smoothed) and
accumulates ``algo.dynamic_batch`` subnets per step. The leaves' phases and evolution run in
``gmnas search`` (``gmnas_cli/algorithms/ofa/search.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from gmnas_cli.algorithms.base import ALGORITHMS, Algorithm, Batch, LossFn
from gmnas_cli.algorithms.ofa.search import search_leaf
from gmnas_cli.config.derived import effective_splits
from gmnas_cli.config.schema import AlgoConfig
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.io import checkpoint_exists
from gmnas_cli.spaces.base import Active, Arch, SearchSpace, Supernet
from gmnas_cli.spaces.ofa.space import OfaSpace, OfaSupernet, Subnet
from gmnas_cli.training.trainer import SupernetTrainer


def soft_cross_entropy(logits: torch.Tensor, soft_target: torch.Tensor) -> torch.Tensor:
    """OFA ``cross_entropy_loss_with_soft_target``: mean of ``-sum(p_teacher * log_softmax)``."""
    return torch.mean(torch.sum(-soft_target * F.log_softmax(logits, dim=1), dim=1))


@ALGORITHMS.register("ofa", keys=("full_epochs", "full_lr", "kernel_epochs", "depth_epochs", "depth_lr", "expand_epochs",
                                     "expand_lr", "dynamic_batch", "kd_ratio", "label_smoothing", "leaf_start",
                                     "evolution"))
class Ofa(Algorithm):
    """Progressive shrinking; no architecture parameters (module docstring)."""

    name = "ofa"
    label = "OFA"
    has_arch_params = False
    spaces = ("ofa_mbv3",)  # progressive shrinking needs the elastic network

    def __init__(self, cfg: AlgoConfig, space: SearchSpace, net: Supernet) -> None:
        if not isinstance(space, OfaSpace):
            raise ConfigError(f"algo=ofa needs space=ofa_mbv3 (got space={space.name})")
        super().__init__(cfg, space, net)
        self.phase = "kernel"
        self.teacher_state: dict[str, torch.Tensor] | None = None
        self._teacher: OfaSupernet | None = None
        self._zeros = torch.zeros(len(space.edges), len(space.ops), device=net.mask_tensor.device)

    # -- config checks (gmnas_cli/pipeline/validate.py) ---------------------------------------
    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        """Settings the declared bounds cannot express; one-line ConfigError."""
        lo, hi = (list(cfg.algo.evolution.flops_window) + [None, None])[:2]
        if len(cfg.algo.evolution.flops_window) != 2 or lo > hi:
            raise ConfigError(f"algo.evolution.flops_window={list(cfg.algo.evolution.flops_window)}: expected "
                              f"[lo, hi] MFLOPs with lo <= hi (paper: [500, 600])")
        a = cfg.algo
        if len(a.depth_lr) != len(a.depth_epochs) or len(a.expand_lr) != len(a.expand_epochs):
            raise ConfigError(f"algo.depth_lr/expand_lr need one lr per phase of algo.depth_epochs/expand_epochs "
                              f"({len(a.depth_epochs)}/{len(a.expand_epochs)})")
        if len(a.dynamic_batch) != 3:
            raise ConfigError(f"algo.dynamic_batch={list(a.dynamic_batch)}: expected 3 values (kernel, depth, "
                              f"expand phases; OFA [1, 2, 4])")
        split_epochs = int(cfg.warmup_epochs) * effective_splits(cfg)
        if str(a.leaf_start) == "continue" and int(a.kernel_epochs) < split_epochs:
            raise ConfigError(f"algo.kernel_epochs={a.kernel_epochs} is shorter than the split phase it contains "
                              f"(warmup_epochs x splits = {split_epochs}); raise it or use algo.leaf_start=full")

    @classmethod
    def splitting_schedule_epochs(cls, cfg: DictConfig) -> int:
        """The warmup/split phases are the kernel phase: one cosine over ``algo.kernel_epochs`` (the
        GM fork's kernel task, splits after epochs 30/60/90 of 120); leaves continue it."""
        return int(cfg.algo.kernel_epochs)

    # -- phases -----------------------------------------------------------------------------
    @property
    def ofa_space(self) -> OfaSpace:
        return self.space  # type: ignore[return-value]

    def phase_ranges(self) -> tuple[list[float], list[int], int]:
        """(expand ratios, depths, subnets per step) that ``phase`` samples from."""
        sp, a = self.ofa_space, self.cfg
        es, ds = sp.expand_ratios, sp.depths
        if self.phase in ("full", "kernel"):
            return [es[-1]], [ds[-1]], 1 if self.phase == "full" else int(a.dynamic_batch[0])
        kind, k = self.phase[:-1], int(self.phase[-1])
        if kind == "depth":
            return [es[-1]], ds[-(k + 2):], int(a.dynamic_batch[1])
        if kind == "expand":
            return es[-(k + 2):], list(ds), int(a.dynamic_batch[2])
        raise ValueError(f"unknown OFA phase {self.phase!r}")

    def sample(self, gen: torch.Generator) -> Subnet:
        """One subnet of the current phase, uniformly inside the mask."""
        sp = self.ofa_space
        if self.phase == "full":
            return sp.max_subnet(self.net.mask)
        expands, depths, _ = self.phase_ranges()
        return sp.sample_subnet(self.net.mask, gen, expands, depths)

    def _use(self, net: OfaSupernet, sub: Subnet) -> tuple[torch.Tensor, Active]:
        net.set_active(sub)
        return self._zeros, net.active_for(sub)

    def train_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        return self._use(self.net, self.sample(gen))  # type: ignore[arg-type]

    def eval_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        """Supernet validation: the largest subnet of the mask (running BN statistics)."""
        return self._use(self.net, self.ofa_space.max_subnet(self.net.mask))  # type: ignore[arg-type]

    def score_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        """GM scoring: one subnet per minibatch, kernels inside the mask, largest expand and depth
        (GM fork: ``sample_active_subnet`` in the kernel task), shared by all kernels of the edge."""
        sp = self.ofa_space
        sub = sp.sample_subnet(self.net.mask, gen, [sp.expand_ratios[-1]], [sp.depths[-1]])
        return self._use(self.net, sub)  # type: ignore[arg-type]

    # -- loss with knowledge distillation ---------------------------------------------------
    def teacher(self) -> OfaSupernet | None:
        if self.teacher_state is None or self.phase == "full" or float(self.cfg.kd_ratio) <= 0:
            return None
        if self._teacher is None:
            sp = self.ofa_space
            t = OfaSupernet(sp, sp.full_mask()).to(self.net.mask_tensor.device)
            t.load_state_dict(self.teacher_state)
            t.set_active(sp.max_subnet())
            for p in t.parameters():
                p.requires_grad_(False)
            self._teacher = t
        return self._teacher

    def weight_loss(self, net: Supernet, batch: Batch, weights: torch.Tensor, active: Active | None,
                    loss_fn: LossFn, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Label-smoothed CE plus KD over ``dynamic_batch`` subnets (the first one is ``active``)."""
        x, y = batch
        kd = float(self.cfg.kd_ratio)
        teacher = self.teacher()
        soft = None
        if teacher is not None:
            teacher.train()  # OFA: teacher in train mode, no gradients
            with torch.no_grad():
                soft = F.softmax(teacher(x).float(), dim=1)
        _, _, n_sub = self.phase_ranges()
        total, first = None, None
        for i in range(n_sub):
            if i > 0:
                weights, active = self.train_weights(gen)
            logits = net(x, weights, active)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=float(self.cfg.label_smoothing))
            if soft is not None:
                loss = (kd * soft_cross_entropy(logits.float(), soft) + loss) * (2.0 / (kd + 1.0))
            total = loss if total is None else total + loss
            first = logits if first is None else first
        return first, total  # type: ignore[return-value]

    # -- warmup hook: the full network first --------------------------------------------------
    def prepare(self, trainer: Any, workdir: Any) -> None:
        """Train the full network for ``algo.full_epochs`` (``workdir/full.pt``, resumable) unless the
        node already carries a teacher; its weights become the KD teacher."""
        if self.teacher_state is not None:
            return


        epochs = int(self.cfg.full_epochs)
        cfg = OmegaConf.merge(trainer.cfg, {"train": {"lr": float(self.cfg.full_lr), "lr_min": 0.0}})  # cosine to 0
        self.phase = "full"
        full = SupernetTrainer(trainer.net, self, cfg, (trainer.train_split, trainer.arch_split),
                               trainer.device, "warmup/full")
        ckpt = workdir / "full.pt"
        if checkpoint_exists(ckpt):
            full.load(ckpt)
        full.fit(epochs, epochs, train_arch=False, ckpt=ckpt, stage="warmup")
        if not ckpt.exists():
            full.save(ckpt)
        full.write_curve(workdir / "full_curve.csv")
        self.phase = "kernel"
        self.teacher_state = {k: v.detach().cpu().clone() for k, v in trainer.net.state_dict().items()}
        self._teacher = None

    # -- derivation and state ---------------------------------------------------------------
    def derive(self, val_batches: Any = None, gen: torch.Generator | None = None) -> Arch:
        return self.ofa_space.derive(self._zeros, self.net.mask)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "teacher": self.teacher_state}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state.get("epoch", 0)
        self.teacher_state = state.get("teacher")
        self._teacher = None

    def reset_arch(self) -> None:
        return None

    @classmethod
    def search_leaf(cls, rt: Any, tree: Any, leaf: Any) -> dict | None:
        """``gmnas search`` for one leaf: progressive shrinking, then evolution (algorithms/ofa/search.py)."""
        return search_leaf(rt, tree, leaf, cls)
