"""Optional TensorBoard logging (``logger=tensorboard``, extra ``gmnas[tensorboard]``), beside the
CSV curves that stay the default: per epoch the loss, accuracy and lr of every trainer, the
entropy of alpha's masked softmax per edge, and the GM distance matrix of every scored edge.

Event files go to ``<experiment>/tensorboard/<trainer tag>/`` (``tensorboard --logdir
outputs/<name>/tensorboard``). Logging reads values only: it changes no result and no random draw.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from gmnas_cli.infra.errors import ConfigError

LOGGERS = ("csv", "tensorboard")


def check_logger(name: str) -> None:
    """Fail before any stage writes a file when the chosen logger cannot be used."""
    if name == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError("logger=tensorboard needs the tensorboard package: pip install 'gmnas[tensorboard]'") \
                from None


def alpha_entropy(probs: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """Entropy (nats) of each edge's distribution over its enabled ops (0 for a single op)."""
    p = probs.detach().float().cpu().clamp_min(1e-30) * mask.cpu()
    return [float(v) for v in -(p * p.log()).sum(dim=-1)]


class TensorBoardLogger:
    """One ``SummaryWriter`` per trainer tag under ``root``; flushed after every write."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._writers: dict[str, Any] = {}

    def _writer(self, tag: str) -> Any:
        if tag not in self._writers:
            from torch.utils.tensorboard import SummaryWriter

            self._writers[tag] = SummaryWriter(log_dir=str(self.root / tag.replace("/", "_")))
        return self._writers[tag]

    def epoch(self, tag: str, record: dict[str, float], edges: list[str], entropy: list[float] | None) -> None:
        """``record``: the curve row (epoch, train_loss, train_acc, lr, val_loss, val_acc, ...)."""
        w, step = self._writer(tag), int(record["epoch"])
        for key, value in record.items():
            if key not in ("epoch", "seconds") and isinstance(value, (int, float)) and math.isfinite(value):
                group = "lr" if key == "lr" else key.replace("_", "/", 1)  # train/loss, val/acc, ...
                w.add_scalar(group, value, step)
        for edge, h in zip(edges, entropy or []):
            w.add_scalar(f"alpha_entropy/{edge}", h, step)
        w.flush()

    def distances(self, tag: str, node: int, scores: dict[str, Any], step: int) -> None:
        """The GM distance matrix of every scored edge of ``node`` (a Markdown table and a heat map)."""
        w = self._writer(tag)
        for edge, score in scores.items():
            matrix, ops = score.get("distance"), score.get("ops") or []
            if matrix is None:
                continue
            rows = ["| | " + " | ".join(ops) + " |", "|---" * (len(ops) + 1) + "|"]
            rows += [f"| {op} | " + " | ".join(f"{v:.4f}" for v in row) + " |" for op, row in zip(ops, matrix)]
            cost = score.get("cut_cost")
            head = f"node {node}, edge {edge}" + (f", cut cost {cost:.4f}" if cost is not None else "")
            w.add_text(f"gm_distance/node{node}/{edge}", head + "\n\n" + "\n".join(rows), step)
            m = torch.tensor(matrix, dtype=torch.float32)
            w.add_image(f"gm_distance/node{node}/{edge}", (m / m.max().clamp_min(1e-12)).unsqueeze(0), step)
        w.flush()


def make_logger(name: str, exp_root: Path) -> TensorBoardLogger | None:
    return TensorBoardLogger(Path(exp_root) / "tensorboard") if name == "tensorboard" else None
