"""``dataset=synthetic``: seeded random uint8 images with a learnable class pattern.

No files needed: for benchmarks at the real data size (``gmnas bench``'s full-schedule timing:
CIFAR-shaped 50,000 training images) and for machines without the data. ``dataset.limit``
training images (0: 50,000, CIFAR-10's count), ``dataset.test_limit`` test images (0: 10,000),
``dataset.image_size`` squared, ``dataset.in_channels`` channels, ``dataset.num_classes`` classes.
"""

from __future__ import annotations

import torch

from gmnas_cli.config.schema import DatasetConfig
from gmnas_cli.data.base import DATASETS, ImageData

CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000
_CHUNK = 4096  # images generated at a time (bounded float32 temporaries)


def synthetic_images(n: int, shape: tuple[int, ...], patterns: torch.Tensor,
                     gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uint8 images: 128 + 40 N(0, 1) noise + 40 x the class's pattern, and their labels."""
    y = torch.randint(len(patterns), (n,), generator=gen)
    x = torch.empty(n, *shape, dtype=torch.uint8)
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        noise = torch.randn(hi - lo, *shape, generator=gen)
        x[lo:hi] = (128.0 + 40.0 * noise + 40.0 * patterns[y[lo:hi]]).clamp_(0, 255).to(torch.uint8)
    return x, y


@DATASETS.register("synthetic")
def load_synthetic(cfg: DatasetConfig) -> ImageData:
    gen = torch.Generator().manual_seed(20220125)
    shape = (int(cfg.in_channels), int(cfg.image_size), int(cfg.image_size))
    patterns = torch.randn(int(cfg.num_classes), *shape, generator=gen)
    tx, ty = synthetic_images(int(cfg.limit) or CIFAR_TRAIN, shape, patterns, gen)
    vx, vy = synthetic_images(int(cfg.test_limit) or CIFAR_TEST, shape, patterns, gen)
    c = int(cfg.in_channels)
    return ImageData(tx, ty, vx, vy, int(cfg.num_classes), mean=(0.5,) * c, std=(0.25,) * c)
