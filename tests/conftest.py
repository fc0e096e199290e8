"""Shared fixtures: compose the real Hydra config in-process, and run the CLI as a subprocess."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from gmnas_cli.cli.app import conf_dir
from gmnas_cli.config import register_configs
from tests._reliability import REPO, SMALL, TINY, built_once, clean_run, run_cli, run_inproc

__all__ = ["REPO", "run_cli", "make_cfg"]  # REPO and run_cli re-exported for the test modules

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


@pytest.fixture
def cfg_factory(tmp_path):
    def factory(*overrides: str) -> DictConfig:
        return make_cfg(tmp_path / "outputs", *overrides)

    return factory


# -- session fixtures: built once per run (shared by the xdist workers), read only ------------

@pytest.fixture(scope="session")
def small_ref(tmp_path_factory) -> Path:
    """One uninterrupted run of SMALL through select, shared by the reliability tests (read only:
    tests work on ``copy_experiment`` copies). Each test module imports this fixture, so it is built
    once per run in a fixed folder and found there by the other modules (and xdist workers)."""
    with built_once(tmp_path_factory, "small_ref", "e/status/select.json") as (out, build):
        if build:
            clean_run(out, SMALL)
    return out / "e"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One ``gmnas run experiment=smoke`` (default name ``nb201-darts-gm-digits-s0``: GM, 2 splits,
    4 leaves, retrain, report), shared read only by the tests of `run`, sweeps and splitting; they
    work on ``copy_experiment`` copies or compare against it."""
    with built_once(tmp_path_factory, "smoke_run", "nb201-darts-gm-digits-s0/status/retrain.json") as (out, build):
        if build:
            code, err = run_inproc("run", "experiment=smoke", f"out_dir={out}")
            assert code == 0, err
    return out / "nb201-darts-gm-digits-s0"


@pytest.fixture(scope="session")
def fresh_search(tmp_path_factory) -> tuple[Path, str]:
    """``gmnas search TINY`` on a new experiment (it brings warmup and split); (root, its log)."""
    with built_once(tmp_path_factory, "fresh_search", "search.log") as (out, build):
        if build:
            code, err = run_inproc("search", *TINY, f"out_dir={out}")
            assert code == 0, err
            (out / "search.log").write_text(err)
    return out / "d", (out / "search.log").read_text()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.gpu`` tests skip on a machine without CUDA."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
