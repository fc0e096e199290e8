"""What every stage needs: device, data halves, search space, experiment directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import torch
from omegaconf import DictConfig

from gmnas_cli.config.derived import option
from gmnas_cli.data import ImageData, Split, load_dataset
from gmnas_cli.experiment.directory import Experiment
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.logging import log
from gmnas_cli.infra.tblog import TensorBoardLogger, make_logger
from gmnas_cli.spaces import SearchSpace, build_space


def resolve_device(name: str, deterministic: bool) -> torch.device:
    name = option(name)
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=auto or device=cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if deterministic:  # cuBLAS reads it at its first use: set it before any CUDA work
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = not deterministic
        torch.backends.cudnn.allow_tf32 = not deterministic
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
    return dev


@dataclass
class Runtime:
    cfg: DictConfig

    @cached_property
    def exp(self) -> Experiment:
        """The experiment directory; the resolved device type is part of its identity (``amp`` gives
        bf16 on CUDA only, so a resume on another device type could switch precision)."""
        return Experiment(self.cfg, device_type=self.device.type)

    @cached_property
    def device(self) -> torch.device:
        return resolve_device(self.cfg.device, self.cfg.deterministic)

    @cached_property
    def data(self) -> ImageData:
        data = load_dataset(self.cfg.dataset)
        if data.in_channels != self.cfg.dataset.in_channels or data.num_classes != self.cfg.dataset.num_classes:
            log.info(f"dataset {self.cfg.dataset.name}: {data.in_channels} channels, {data.num_classes} classes")
        # Small data sets are held on the device as uint8 once; batches are cut and augmented there.
        return data.to(self.device)

    @cached_property
    def halves(self) -> tuple[Split, Split]:
        """(weights half, architecture half) of the training set (docs/method-facts.md)."""
        return self.data.halves()

    @cached_property
    def logger(self) -> TensorBoardLogger | None:
        """``logger=tensorboard``: event files beside the CSV curves (``infra/tblog.py``); else None."""
        return make_logger(str(self.cfg.logger), self.exp.root)

    @cached_property
    def space(self) -> SearchSpace:
        return build_space(self.cfg.space, self.cfg.dataset.num_classes, self.cfg.dataset.in_channels,
                           self.cfg.dataset.image_size)
