"""scikit-learn's bundled digits: 1,797 real 8x8 grey images, the embedded default data set."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits as sk_load

from gmnas_cli.config.schema import DatasetConfig
from gmnas_cli.data.base import DATASETS, ImageData


@DATASETS.register("digits")
def load_digits(cfg: DatasetConfig) -> ImageData:
    """First 80% (by index, after a fixed shuffle) is training data, the rest the test split."""

    bunch = sk_load()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    labels = bunch.target.astype(np.int64)
    # The file is ordered by writer; one fixed permutation mixes writers across the splits.
    perm = np.random.default_rng(20220125).permutation(len(labels))
    images, labels = images[perm], labels[perm]
    n_train = int(round(0.8 * len(labels)))
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(labels)
    tx, ty, vx, vy = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    if cfg.limit:
        tx, ty = tx[: cfg.limit], ty[: cfg.limit]
    if cfg.test_limit:
        vx, vy = vx[: cfg.test_limit], vy[: cfg.test_limit]
    mean = float(x.float().mean() / 255.0)
    std = float(x.float().std() / 255.0)
    return ImageData(tx, ty, vx, vy, num_classes=10, mean=(mean,), std=(std,), flip=False, pad=1)
