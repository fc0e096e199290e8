"""The benchmark interface: look up the published figures of a derived architecture."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gmnas_cli.infra.errors import ConfigError, StageError


class Benchmark(ABC):
    """A lookup table or surrogate: ``query(arch) -> {metric: value}`` (values in the source's units)."""

    name: str = ""
    spaces: tuple[str, ...] = ()  # search spaces (``space.name``) whose architectures it can score

    @property
    @abstractmethod
    def metrics(self) -> list[str]:
        """Metric names that ``query`` returns."""

    @abstractmethod
    def query(self, arch: Any) -> dict[str, float]:
        """Figures of one architecture; raises ``StageError`` if it is unknown."""

    def ranked(self, metric: str) -> list[tuple[str, float]] | None:
        """Every architecture, best first by ``metric``; asked by ``gmnas rank`` for its top-k rows.
        Default None: not a full table (surrogates), only the sampled row is reported."""
        return None

    def best(self, metric: str) -> tuple[str, float]:
        """The architecture with the highest ``metric`` and its value (only for exhaustive tables)."""
        raise StageError(f"{self.name}: best() is not available for this benchmark (not a full table)")

    def _check_metric(self, metric: str) -> None:
        if metric not in self.metrics:
            raise StageError(f"{self.name}: unknown metric {metric!r}; available: {', '.join(self.metrics)}")


def cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    """Read ``key`` from a DictConfig or dataclass; a ``???`` value is a one-line ConfigError."""
    if isinstance(cfg, DictConfig):
        if key in cfg and OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"benchmark.{key} is required for benchmark={cfg.get('name')}: "
                              f"pass benchmark.{key}=...")
        value = cfg.get(key, default)
        return OmegaConf.to_container(value) if isinstance(value, DictConfig) else value
    value = cfg.get(key, default) if isinstance(cfg, Mapping) else getattr(cfg, key, default)
    if value == "???":
        raise ConfigError(f"benchmark.{key} is required: pass benchmark.{key}=...")
    return value
