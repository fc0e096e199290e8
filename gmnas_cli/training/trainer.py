"""Supernet training: weight steps, optional architecture steps, per-epoch checkpoint and resume.

Every random choice of an epoch (data order, augmentation, path sampling) comes from generators
seeded by (experiment seed, stage, node, epoch), so resuming from the checkpoint written at the
end of an epoch reproduces the uninterrupted run exactly on CPU.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gmnas_cli.algorithms.base import Algorithm
from gmnas_cli.data import Split
from gmnas_cli.infra import distributed
from gmnas_cli.infra.errors import TrainingDiverged
from gmnas_cli.infra.logging import log, progress_bar
from gmnas_cli.infra.seeding import derive_seed, generator
from gmnas_cli.infra.tblog import alpha_entropy
from gmnas_cli.spaces import Supernet
from gmnas_cli.training.state import Checkpointed


def cosine_lr(lr: float, lr_min: float, epoch: int, total: int) -> float:
    """Cosine annealing from ``lr`` to ``lr_min`` over ``total`` epochs (Appendix D)."""
    if total <= 0:
        return lr
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * min(epoch, total) / total))


def check_finite(loss: torch.Tensor, where: str) -> None:
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"{where}: loss is {float(loss.detach())}; stopping (lower train.lr or check the data)")


class SupernetTrainer(Checkpointed):
    """Trains one (sub-)supernet; its state is model, optimizers, algorithm state and history."""

    logger: Any = None  # a TensorBoardLogger (logger=tensorboard), set by stages.common.build_trainer

    def __init__(self, net: Supernet, algo: Algorithm, cfg: Any, halves: tuple[Split, Split],
                 device: torch.device, tag: str) -> None:
        self.net, self.algo, self.cfg = net, algo, cfg
        self.train_split, self.arch_split = halves
        self.device = device
        self.tag = tag  # e.g. "warmup/node0": seeds and messages
        t = cfg.train
        self.w_optimizer = torch.optim.SGD(net.parameters(), lr=t.lr, momentum=t.momentum,
                                           nesterov=t.nesterov, weight_decay=t.weight_decay)
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.use_amp = device.type == "cuda" and bool(cfg.amp)
        self.w_params = list(net.parameters())
        # CUDA: losses are checked for NaN/inf every `train.finite_check_every` steps and at the end
        # of every epoch (one host sync per check instead of one per step); CPU: every step.
        self.defer_checks = device.type == "cuda"
        self._pending: list[tuple[str, torch.Tensor]] = []

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.net.state_dict(), "w_optimizer": self.w_optimizer.state_dict(),
                "algo": self.algo.state_dict(), "epoch": self.epoch, "history": list(self.history),
                "mask": self.net.mask}

    def load_state_dict(self, state: dict[str, Any], weights_only: bool = False) -> None:
        self.net.load_state_dict(state["model"])
        if weights_only:
            return
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.algo.load_state_dict(state["algo"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])

    # -- steps ------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_amp else nullcontext()

    def loss_fn(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), y, label_smoothing=float(self.cfg.train.label_smoothing))

    def _prep(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        if self.cfg.channels_last:  # CPU too: oneDNN runs NHWC convs without layout reorders
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor],
                   arch_batch: tuple[torch.Tensor, torch.Tensor] | None, gen: torch.Generator,
                   where: str = "train step") -> tuple[torch.Tensor, torch.Tensor]:
        """One search step: the algorithm's arch step on ``arch_batch`` (None: alpha frozen), then
        one weight step on ``batch``. Returns the detached weight-step loss and logits."""
        if arch_batch is not None:
            with self._autocast():
                self.algo.arch_step(batch, arch_batch, self.loss_fn, self.w_optimizer, gen)
        with self._autocast():
            weights, active = self.algo.train_weights(gen)
        # alpha's gradient from the weight loss is discarded below: not computing it is the
        # same step, cheaper (no weight-gradient dot products in the mixed ops' backward).
        weights = weights.detach()
        draws = gen.get_state()

        def forward(b: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            gen.set_state(draws)  # every shard samples what every rank samples (OFA's subnets)
            with self._autocast():
                logits, loss = self.algo.weight_loss(self.net, b, weights, active, self.loss_fn, gen)
            return loss, logits

        self.w_optimizer.zero_grad(set_to_none=True)
        # data parallel: backward per shard, gradients averaged over shards and ranks (infra/distributed.py)
        loss, logits = distributed.shard_backward(forward, batch, self.net, self.w_params)
        self._check(loss, where)  # CUDA: deferred to one host sync every finite_check_every steps
        clip = self.cfg.train.grad_clip
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), clip)
        self.w_optimizer.step()
        if self.algo.alpha.grad is not None:
            self.algo.alpha.grad = None
        return loss, logits

    def _check(self, loss: torch.Tensor, where: str) -> None:
        """``check_finite`` now (CPU) or at the next ``flush_checks`` (CUDA, module comment above)."""
        if not self.defer_checks:
            check_finite(loss, where)
            return
        self._pending.append((where, loss))
        if len(self._pending) >= int(getattr(self.cfg.train, "finite_check_every", 1)):
            self.flush_checks()

    def flush_checks(self) -> None:
        """Raise ``TrainingDiverged`` naming the first pending step whose loss is not finite."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        bad = ~torch.isfinite(torch.stack([loss for _, loss in pending]))
        if bool(bad.any()):  # the one host sync of this check
            where, loss = pending[int(bad.nonzero()[0, 0])]
            check_finite(loss, where)

    def fit(self, end_epoch: int, schedule_epochs: int, train_arch: bool, ckpt: Path | None = None,
            evaluate: bool = True, stage: str = "", schedule_offset: int = 0,
            temperature_epochs: int | None = None, lr_max: float | None = None) -> None:
        """Train until ``end_epoch``; lr follows a cosine over ``schedule_epochs`` from ``lr_max``
        (None: ``train.lr``), the algorithm's temperature a schedule over ``temperature_epochs``
        (default: the same length)."""
        t = self.cfg.train
        bs = int(t.batch_size)
        steps = self.train_split.num_batches(bs, drop_last=True)
        if t.max_steps_per_epoch:
            steps = min(steps, int(t.max_steps_per_epoch))
        seed = int(self.cfg.seed)
        while self.epoch < end_epoch:
            epoch = self.epoch
            start = time.time()
            lr = cosine_lr(t.lr if lr_max is None else lr_max, t.lr_min, epoch - schedule_offset, schedule_epochs)
            for group in self.w_optimizer.param_groups:
                group["lr"] = lr
            self.algo.epoch_start(epoch - schedule_offset,
                                  schedule_epochs if temperature_epochs is None else temperature_epochs)
            self.net.train()
            gen = generator(seed, self.tag, epoch, "algo")
            w_batches = self.train_split.batches(bs, derive_seed(seed, self.tag, epoch, "w"), t.augment, True)
            a_batches = (self.arch_split.batches(bs, derive_seed(seed, self.tag, epoch, "a"), t.augment, True)
                         if train_arch else None)
            # Running sums stay on the device (float64: the same sums as Python floats); one
            # conversion per epoch instead of two host syncs per step.
            tot_loss = torch.zeros((), dtype=torch.float64, device=self.device)
            tot_correct = torch.zeros((), dtype=torch.int64, device=self.device)
            tot_n = 0
            with progress_bar(f"{self.tag} epoch {epoch + 1}/{end_epoch}", steps) as advance:
                for step in range(steps):
                    batch = self._prep(next(w_batches))
                    due = a_batches is not None and self.algo.arch_step_due(epoch - schedule_offset, step, steps)
                    arch_batch = self._prep(next(a_batches)) if due else None
                    loss, logits = self.train_step(
                        batch, arch_batch, gen, f"{stage or self.tag}: {self.tag}, epoch {epoch + 1}, step {step + 1}")
                    yb = batch[1]
                    n = len(yb)
                    tot_loss += loss.double() * n
                    tot_correct += (logits.argmax(1) == distributed.local_labels(batch)).sum()  # this rank's shards
                    tot_n += n
                    advance(1)
            self.flush_checks()  # before anything of this epoch is recorded or saved
            record = {"epoch": epoch + 1, "train_loss": float(tot_loss) / max(tot_n, 1),
                      "train_acc": int(distributed.allreduce_totals(tot_correct)[0]) / max(tot_n, 1), "lr": lr}
            if self.algo.tau is not None:
                record["tau"] = float(self.algo.tau)
            if evaluate:
                val_loss, val_acc = self.evaluate(epoch)
                record.update(val_loss=val_loss, val_acc=val_acc)
            record["seconds"] = round(time.time() - start, 3)
            self.history.append(record)
            self.epoch = epoch + 1
            if ckpt is not None:
                self.save(ckpt)
            if self.logger is not None:  # logger=tensorboard (infra/tblog.py); reads values only
                entropy = (alpha_entropy(self.algo.probabilities(), self.net.mask_tensor)
                           if self.algo.has_arch_params else None)
                self.logger.epoch(self.tag, record, list(self.algo.space.edges), entropy)
            msg = " ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "seconds"))
            log.info(f"{self.tag} epoch {epoch + 1}/{end_epoch} {msg} ({record['seconds']:.1f}s)")

    @torch.no_grad()
    def evaluate(self, epoch: int = 0, split: Split | None = None) -> tuple[float, float]:
        """Supernet validation loss and accuracy on the architecture half (never the test split)."""
        split = split or self.arch_split
        self.net.eval()
        gen = generator(int(self.cfg.seed), self.tag, epoch, "eval")
        bs = max(int(self.cfg.train.batch_size), 256)

        def forward(b: tuple[torch.Tensor, torch.Tensor], weights: torch.Tensor, active) -> tuple[torch.Tensor, torch.Tensor]:
            with self._autocast():
                logits = self.net(b[0], weights, active)
            # plain cross-entropy: label smoothing is a training loss only (ProxylessNAS validate())
            return F.cross_entropy(logits.float(), b[1]), logits

        totals = distributed.ShardTotals(self.device)  # data parallel: each rank evaluates its shards
        for batch in split.batches(bs, None):
            batch = self._prep(batch)
            weights, active = self.algo.eval_weights(gen)
            totals.add(batch, lambda b, w=weights, a=active: forward(b, w, a))
        self.net.train()
        tot_loss, correct, n = totals.sums()
        return tot_loss / max(n, 1), correct / max(n, 1)
