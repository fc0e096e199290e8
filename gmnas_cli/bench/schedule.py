"""``bench.schedule=true``: the configured search schedule timed end to end.

The real stages (``warmup``, ``split`` with its GM scoring, ``search`` of every leaf) run in a
temporary experiment directory on ``dataset=synthetic`` images of ``bench.image_size`` (3
channels, 10 classes; ``bench.schedule_images`` training images, of which half train the weights
and half alpha, as docs/method-facts.md splits CIFAR-10), with the configured space, algorithm, criterion,
batch size and epochs. ``experiment=bench_gpu`` sets the NAS-Bench-201 GM + DARTS paper schedule:
warmup 15 epochs, splits at 15 and 30 (2 children, then 4 leaves), 30 search epochs per leaf:
15 + 2 x 15 + 4 x 30 = 165 supernet-epochs of 25,000 images plus the GM scoring.
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from gmnas_cli.config.derived import branching_list, effective_splits
from gmnas_cli.config.schema import DatasetConfig
from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.stages import search, split, warmup


def supernet_epochs(cfg: DictConfig) -> int:
    """Epochs of supernet training the schedule runs: warmup, the children between splits, the
    leaves' search."""
    warm, splits = int(cfg.warmup_epochs), effective_splits(cfg)
    factors = branching_list(cfg) if splits else []
    between = sum(math.prod(factors[:s]) for s in range(1, splits)) * warm
    return warm + between + math.prod(factors) * int(cfg.search_epochs)


def schedule_config(cfg: DictConfig, out_dir: str) -> DictConfig:
    """``cfg`` on synthetic data of the bench's size, in ``out_dir``, quiet."""
    c = copy.deepcopy(cfg)
    b = cfg.bench
    data = OmegaConf.structured(DatasetConfig(name="synthetic", num_classes=10, in_channels=3,
                                              image_size=int(b.image_size), limit=int(b.schedule_images),
                                              test_limit=max(int(b.schedule_images) // 5, 1)))
    with open_dict(c):
        c.dataset = data
        c.out_dir = out_dir
        c.name = "bench-schedule"
        c.quiet = True
        c.force = False
    return c


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_schedule(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    """Seconds per stage and in all, supernet-epochs and (CUDA) peak memory of the schedule."""

    out: dict[str, Any] = {"epochs": supernet_epochs(cfg), "images": int(cfg.bench.schedule_images) // 2}
    with tempfile.TemporaryDirectory(prefix="gmnas-bench-") as tmp:
        c = schedule_config(cfg, tmp)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        total = 0.0
        for name, stage in (("warmup", warmup), ("split", split), ("search", search)):
            _sync(device)
            start = time.perf_counter()
            stage.main(c)
            _sync(device)
            out[name] = time.perf_counter() - start
            total += out[name]
        out["total"] = total
        if device.type == "cuda":
            out["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20

        out["leaves"] = len(PartitionTree.load(f"{tmp}/bench-schedule/tree.json").leaves())
    return out
