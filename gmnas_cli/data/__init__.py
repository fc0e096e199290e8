"""Data sets read from on-disk formats (never downloaded), keyed by ``dataset=`` option names."""

from __future__ import annotations

from gmnas_cli.config.schema import DatasetConfig
from gmnas_cli.data.base import DATASETS, ImageData, Split


def load_dataset(cfg: DatasetConfig) -> ImageData:
    """Load the configured data set; errors name the path and the expected files."""
    return DATASETS[cfg.name](cfg)


__all__ = ["DATASETS", "ImageData", "Split", "load_dataset"]
