"""Benchmark lookups keyed by ``benchmark.name``: NAS-Bench-201 tables and the NB301 surrogate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gmnas_cli.benchmarks.base import Benchmark, cfg_get
from gmnas_cli.benchmarks.genotype import parse_genotype
from gmnas_cli.benchmarks.nb201 import NB201Api, NB201Table, check_trust, normalize_arch, open_nb201
from gmnas_cli.benchmarks.nb301 import NB301Surrogate, open_nb301
from gmnas_cli.infra.registry import Registry

BENCHMARKS: Registry[Callable[[Any], Benchmark | None]] = Registry("benchmark")
BENCHMARKS.register("none")(lambda cfg: None)
BENCHMARKS.register("nb201")(open_nb201)
BENCHMARKS.register("nb301_surrogate")(open_nb301)
# Start-up checks of one benchmark's settings (``pipeline/validate.py``, before anything is written).
CHECKS: dict[str, Callable[[Any], None]] = {"nb201": check_trust}


def benchmark_enabled(cfg: Any) -> bool:
    """Whether ``cfg`` (a ``BenchmarkConfig``) names a benchmark (``benchmark=none``: no lookup)."""
    return str(cfg_get(cfg, "name", "none")) != "none"


def check_benchmark(cfg: Any) -> None:
    """ConfigError for an unknown benchmark or settings it refuses (NB201 pickles without opt-in)."""
    name = str(cfg_get(cfg, "name", "none"))
    BENCHMARKS[name]
    check = CHECKS.get(name)
    if check is not None:
        check(cfg)


def load_benchmark(cfg: Any) -> Benchmark | None:
    """Open the benchmark that ``cfg`` (a ``BenchmarkConfig``) names; ``None`` for ``name: none``."""
    return BENCHMARKS[str(cfg_get(cfg, "name", "none"))](cfg)


__all__ = ["BENCHMARKS", "Benchmark", "NB201Api", "NB201Table", "NB301Surrogate", "benchmark_enabled",
           "check_benchmark", "load_benchmark", "normalize_arch", "parse_genotype"]
