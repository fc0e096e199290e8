"""Training a stand-alone architecture from scratch: the ``retrain`` stage and successive halving.

The protocol is ``cfg.retrain`` (DARTS, paper Appendix D.2: SGD with momentum and weight decay, a
cosine learning rate, cutout, drop-path increased linearly from 0, an auxiliary loss, gradient
clipping). Every random choice of an epoch (data order, crop/flip, cutout, drop-path masks) is
seeded by (experiment seed, tag, epoch), and a checkpoint is written after every epoch, so a
resumed run reproduces the uninterrupted one exactly on CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gmnas_cli.data import Split
from gmnas_cli.infra import distributed
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.logging import log, progress_bar
from gmnas_cli.infra.seeding import derive_seed, generator, seeded_init
from gmnas_cli.spaces import Arch, SearchSpace
from gmnas_cli.spaces.counting import count_params
from gmnas_cli.training.state import Checkpointed
from gmnas_cli.training.trainer import check_finite, cosine_lr


def cutout(x: torch.Tensor, length: int, gen: torch.Generator) -> torch.Tensor:
    """Zero one ``length`` x ``length`` square per image, centred uniformly, clipped at the borders
    (DeVries & Taylor 2017, DARTS ``utils.Cutout``; applied after normalisation as DARTS does)."""
    if length <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b, 1), generator=gen).to(x.device)
    cx = torch.randint(0, w, (b, 1), generator=gen).to(x.device)
    rows = torch.arange(h, device=x.device).view(1, h)
    cols = torch.arange(w, device=x.device).view(1, w)
    in_y = (rows >= (cy - length // 2).clamp(0, h)) & (rows < (cy + length // 2).clamp(0, h))
    in_x = (cols >= (cx - length // 2).clamp(0, w)) & (cols < (cx + length // 2).clamp(0, w))
    hole = in_y.view(b, 1, h, 1) & in_x.view(b, 1, 1, w)
    return x.masked_fill(hole, 0.0)


def build_network(space: SearchSpace, arch: Arch, cfg: Any, seed_tag: str) -> nn.Module:
    """The space's stand-alone network for ``arch`` with seeded initial weights."""
    with seeded_init(int(cfg.seed), seed_tag, "init"):
        return space.build_network(arch, cfg.retrain, int(cfg.dataset.num_classes), int(cfg.dataset.in_channels))


class NetworkTrainer(Checkpointed):
    """Trains one stand-alone network for ``epochs`` epochs under ``cfg.retrain``."""

    def __init__(self, net: nn.Module, cfg: Any, train_split: Split, device: torch.device, tag: str,
                 epochs: int, space: SearchSpace | None = None) -> None:
        r = cfg.retrain
        self.space = space  # the space whose network this is (``SearchSpace.set_drop_path``)
        self.cfg, self.r = cfg, r
        self.net = net.to(device)
        self.device = device
        self.channels_last = device.type == "cuda" and bool(cfg.channels_last)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.train_split = train_split
        self.tag = tag  # seeds and messages, e.g. "retrain" or "select/sh/r0/leaf3"
        self.epochs = int(epochs)
        momentum = float(r.momentum)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=float(r.lr), momentum=momentum,
                                         nesterov=bool(r.nesterov) and momentum > 0,
                                         weight_decay=float(r.weight_decay))
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.use_amp = device.type == "cuda" and bool(cfg.amp)
        # torchrun: DDP averages the weight gradients; BN statistics are averaged over the shards
        # (distributed.shard_backward), not broadcast from rank 0. SyncBatchNorm cannot run on CPU.
        self.ddp = (nn.parallel.DistributedDataParallel(self.net, forward_sync_buffers=False)
                    if distributed.active() else None)

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch, "epochs": self.epochs, "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])

    # -- schedule ---------------------------------------------------------------------------
    def lr_at(self, epoch: int) -> float:
        """Cosine from ``retrain.lr`` to ``retrain.lr_min`` (D.2), or exponential decay (DARTS ImageNet);
        after ``retrain.warmup_epochs`` of linear warm-up (epoch e: lr * (e + 1) / warmup; ProxylessNAS)."""
        r = self.r
        warm = int(getattr(r, "warmup_epochs", 0) or 0)
        if epoch < warm:
            return float(r.lr) * (epoch + 1) / warm
        kind = str(r.lr_schedule)
        if kind == "exponential":
            return float(r.lr) * float(r.lr_gamma) ** (epoch - warm)
        if kind != "cosine":
            raise ConfigError(f"retrain.lr_schedule={kind!r}; valid: cosine, exponential")
        return cosine_lr(float(r.lr), float(r.lr_min), epoch - warm, self.epochs - warm)

    def drop_path_at(self, epoch: int) -> float:
        """``retrain.drop_path * epoch / epochs``: increased linearly from 0 (DARTS train.py)."""
        return float(self.r.drop_path) * epoch / max(self.epochs, 1)

    # -- training ---------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_amp else nullcontext()

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def loss(self, out: torch.Tensor | tuple[torch.Tensor, torch.Tensor], y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy (with label smoothing) plus ``auxiliary_weight`` x the auxiliary head's loss."""
        smooth = float(self.r.label_smoothing)
        logits, aux = out if isinstance(out, tuple) else (out, None)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=smooth)
        if aux is not None:
            loss = loss + float(self.r.auxiliary_weight) * F.cross_entropy(aux.float(), y, label_smoothing=smooth)
        return loss, logits

    @property
    def params(self) -> list[torch.Tensor]:
        return list(self.net.parameters())

    def _forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, main-head logits) of one shard, through the DDP wrapper when there is one."""
        x, y = batch
        with self._autocast():
            return self.loss((self.ddp or self.net)(x), y)

    def fit(self, ckpt: Path | None = None, until: int | None = None,
            on_epoch: Callable[[int, dict[str, Any]], None] | None = None) -> None:
        """Train until ``epochs`` (or ``until``, e.g. a successive-halving rung, on the same schedule),
        checkpointing after each epoch (resume: ``load`` first). ``on_epoch(index, record)`` may add
        figures to an epoch's record before it is checkpointed (held-out accuracy of a rung)."""
        r = self.r
        bs = int(r.batch_size)
        drop_last = len(self.train_split) >= bs  # BN needs more than one sample per batch
        steps = self.train_split.num_batches(bs, drop_last=drop_last)
        if int(r.max_steps_per_epoch):
            steps = min(steps, int(r.max_steps_per_epoch))
        seed = int(self.cfg.seed)
        size = int(self.train_split.data.image_size)
        if int(r.cutout) >= size and self.epoch < self.epochs:
            log.warning(f"{self.tag}: retrain.cutout={int(r.cutout)} px covers whole {size}x{size} images "
                        f"(DARTS' 16 px is meant for 32x32 CIFAR); set retrain.cutout lower or 0")
        stop = self.epochs if until is None else min(int(until), self.epochs)
        while self.epoch < stop:
            epoch = self.epoch
            start = time.time()
            lr = self.lr_at(epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            p_drop = self.drop_path_at(epoch)
            if self.space is not None:
                self.space.set_drop_path(self.net, p_drop)
            # drop-path masks (data parallel: one stream per rank, the single-process one on rank 0)
            torch.manual_seed(derive_seed(seed, self.tag, epoch, "drop-path", *([distributed.rank()] if distributed.rank() else [])))
            cut_gen = generator(seed, self.tag, epoch, "cutout")
            batches = self.train_split.batches(bs, derive_seed(seed, self.tag, epoch, "data"), True, drop_last)
            self.net.train()
            tot_loss, correct, n = 0.0, 0, 0
            with progress_bar(f"{self.tag} epoch {epoch + 1}/{self.epochs}", steps) as advance:
                for step in range(steps):
                    x, y = next(batches)
                    x = self._prep(cutout(x, int(r.cutout), cut_gen))
                    self.optimizer.zero_grad(set_to_none=True)
                    # data parallel: this rank's shards of the global batch, gradients averaged (DDP)
                    loss, logits = distributed.shard_backward(self._forward, (x, y), self.net, self.params, self.ddp)
                    check_finite(loss, f"{self.tag}, epoch {epoch + 1}, step {step + 1}")
                    if float(r.grad_clip) > 0:
                        nn.utils.clip_grad_norm_(self.net.parameters(), float(r.grad_clip))
                    self.optimizer.step()
                    tot_loss += float(loss) * len(y)
                    correct += int((logits.argmax(1) == distributed.local_labels((x, y))).sum())
                    n += len(y)
                    advance(1)
            correct = int(distributed.allreduce_totals(correct)[0])  # data parallel: all shards' hits
            record = {"epoch": epoch + 1, "train_loss": tot_loss / max(n, 1), "train_acc": correct / max(n, 1),
                      "lr": lr, "drop_path": p_drop}
            if on_epoch is not None:
                on_epoch(epoch, record)
            record["seconds"] = round(time.time() - start, 3)
            self.history.append(record)
            self.epoch = epoch + 1
            if ckpt is not None:
                self.save(ckpt)
            log.info(f"{self.tag} epoch {epoch + 1}/{self.epochs} train_loss {record['train_loss']:.4f} "
                     f"train_acc {record['train_acc']:.4f} lr {lr:.5f} ({record['seconds']:.1f}s)")

    def evaluate(self, split: Split) -> tuple[float, float]:
        """Plain cross-entropy and accuracy of the main head on ``split`` (eval mode, no augmentation)."""
        m = self.evaluate_topk(split)
        return m["loss"], m["top1"]

    @torch.no_grad()
    def evaluate_topk(self, split: Split, k: int = 5) -> dict[str, float]:
        """Cross-entropy, top-1 and top-``k`` accuracy on ``split`` (ImageNet reports top-5)."""
        self.net.eval()
        bs = max(int(self.r.batch_size), 256)
        tot_loss, correct, correct_k, n = 0.0, 0, 0, 0
        for x, y in split.batches(bs, None):
            with self._autocast():
                logits = self.net(self._prep(x))
            if isinstance(logits, tuple):
                logits = logits[0]
            tot_loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            top = logits.topk(min(k, logits.shape[1]), dim=1).indices
            correct_k += int((top == y.view(-1, 1)).any(1).sum())
            n += len(y)
        self.net.train()
        return {"loss": tot_loss / max(n, 1), "top1": correct / max(n, 1), "topk": correct_k / max(n, 1)}

    @property
    def seconds(self) -> float:
        return round(sum(h["seconds"] for h in self.history), 3)


def short_retrain(rt: Any, arch: Arch, epochs: int, tag: str, ckpt: Path | None = None) -> dict[str, float]:
    """Successive halving's short retrain: train on the weights half, score on the architecture half.

    The test split is never read (docs/method-facts.md: successive halving ranks on a held-out split).
    """
    train_half, held_out = rt.halves
    net = build_network(rt.space, arch, rt.cfg, tag)
    trainer = NetworkTrainer(net, rt.cfg, train_half, rt.device, tag, epochs, space=rt.space)
    if ckpt is not None and ckpt.exists():
        trainer.load(ckpt)
    trainer.fit(ckpt)
    val_loss, val_acc = trainer.evaluate(held_out)
    return {"val_loss": float(val_loss), "val_acc": float(val_acc), "seconds": trainer.seconds}


def retrain_from_scratch(rt: Any, arch: Arch, out_dir: Path) -> dict[str, Any]:
    """Train ``arch`` on the full training set (both halves) for ``retrain.epochs``, resuming from
    ``out_dir/ckpt.pt``; then evaluate once on the test split."""
    cfg = rt.cfg
    net = build_network(rt.space, arch, cfg, "retrain")
    params_m = count_params(net) / 1e6
    trainer = NetworkTrainer(net, cfg, rt.data.full_train(), rt.device, "retrain", int(cfg.retrain.epochs),
                             space=rt.space)
    ckpt = out_dir / "ckpt.pt"
    if ckpt.exists():
        trainer.load(ckpt)
        log.info(f"retrain: resuming from {ckpt} at epoch {trainer.epoch}/{trainer.epochs}")
    trainer.fit(ckpt)
    if not ckpt.exists():  # retrain.epochs=0: keep the initial weights
        trainer.save(ckpt)
    trainer.write_curve(out_dir / "curve.csv")
    start = time.time()
    m = trainer.evaluate_topk(rt.data.test())
    test_loss, test_acc = m["loss"], m["top1"]
    return {**rt.space.arch_metrics(arch), "params_m": round(params_m, 6), "test_acc": float(test_acc),
            "test_loss": float(test_loss), "test_error": round(100.0 * (1.0 - float(test_acc)), 4),
            "test_top5_error": round(100.0 * (1.0 - float(m["topk"])), 4), "epochs": trainer.epochs,
            "seconds": round(trainer.seconds + time.time() - start, 3)}


__all__ = ["NetworkTrainer", "build_network", "cutout", "retrain_from_scratch",
           "short_retrain"]
