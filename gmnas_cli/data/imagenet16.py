"""NAS-Bench-201's ImageNet16-120 read from the downsampled-ImageNet 16x16 pickles.

``dataset.root`` holds ``train_data_batch_1..10`` and ``val_data``: pickled dicts with ``data``
(N x 768 uint8, 3x16x16 channel-major) and ``labels`` (1-based, 1..1000). As in NAS-Bench-201,
only labels 1..120 are kept (shifted to 0..119); ``val_data`` is the test split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gmnas_cli.config.schema import DatasetConfig
from gmnas_cli.data.base import DATASETS, ImageData
from gmnas_cli.data.cifar import (
    apply_limit,
    check_num_classes,
    image_batch,
    read_pickle,
    require_files,
    require_root,
    to_tensors,
)
from gmnas_cli.infra.errors import DataError

NUM_CLASSES = 120  # ImageNet16-120: the first 120 of the 1,000 ImageNet classes
TRAIN_FILES = [f"train_data_batch_{i}" for i in range(1, 11)]
TEST_FILE = "val_data"
MEAN = tuple(v / 255.0 for v in (122.68, 116.66, 104.01))
STD = tuple(v / 255.0 for v in (63.22, 61.26, 65.09))
EXPECTED = ("NAS-Bench-201's ImageNet16 folder with the pickled batches train_data_batch_1..10 "
            "and val_data")


def _read_split(cfg: DatasetConfig, paths: list[Path], limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with labels 1..120 (0-based on return), stopping once ``limit`` are in hand."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    count = 0
    for path in paths:
        x, y = image_batch(cfg, path, read_pickle(cfg, path, ["data", "labels"], EXPECTED),
                           "labels", 16, EXPECTED)
        if len(y) and (y.min() < 1 or y.max() > 1000):
            raise DataError(f"dataset {cfg.name}: {path} has labels outside 1..1000 (the files are "
                            f"1-based); expected {EXPECTED}")
        keep = y <= NUM_CLASSES
        xs.append(x[keep])
        ys.append(y[keep] - 1)
        count += int(keep.sum())
        if 0 < limit <= count:
            break
    return apply_limit(*to_tensors(xs, ys, 16), limit)


@DATASETS.register("imagenet16")
def load_imagenet16(cfg: DatasetConfig) -> ImageData:
    """ImageNet16-120: about 151,700 training and 6,000 test images of 16x16, 120 classes."""
    root = require_root(cfg, "the ImageNet16 folder holding train_data_batch_1..10 and val_data")
    paths = require_files(cfg, root, [*TRAIN_FILES, TEST_FILE], EXPECTED)
    check_num_classes(cfg, NUM_CLASSES, root)
    tx, ty = _read_split(cfg, paths[:-1], cfg.limit)
    vx, vy = _read_split(cfg, paths[-1:], cfg.test_limit)
    if len(ty) == 0:
        raise DataError(f"dataset {cfg.name}: {root} holds no training images with labels 1..120; "
                        f"expected {EXPECTED}")
    return ImageData(tx, ty, vx, vy, num_classes=NUM_CLASSES, mean=MEAN, std=STD, flip=True, pad=2)
