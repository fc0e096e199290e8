"""Shared fixtures: compose the real Hydra config in-process, and run the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from gmnas_cli.cli.app import conf_dir
from gmnas_cli.config import register_configs

REPO = Path(__file__).resolve().parents[1]
# Real benchmark tables (never committed): $GMNAS_BENCHMARKS or ../shared/benchmarks beside the clone.
SHARED = Path(os.environ.get("GMNAS_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
# The published DARTS-V2 genotype (Liu et al. 2019) as the usual string.
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
)
torch.set_num_threads(1)  # determinism and fair sharing of the 2 CI cores


def make_cfg(out_dir: Path | str, *overrides: str) -> DictConfig:
    """The composed config of ``gmnas <cmd> overrides`` with ``out_dir`` pointed at a temp dir."""
    register_configs()
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        return compose("config", overrides=[f"out_dir={out_dir}", *overrides])


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``gmnas args`` in a subprocess; returns the completed process (never raises)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "gmnas_cli", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cfg_factory(tmp_path):
    def factory(*overrides: str) -> DictConfig:
        return make_cfg(tmp_path / "outputs", *overrides)

    return factory
