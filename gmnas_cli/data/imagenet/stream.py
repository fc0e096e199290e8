"""Streaming image folders: a ``torch.utils.data.DataLoader`` with worker processes, never the
whole set in memory (full ImageNet). Same interface as ``ImageData``/``Split``.

Order: a split's minibatches follow ``torch.randperm(n)`` seeded like ``Split.batches``, so for
the same seed both paths visit the same images in the same order, and (without augmentation,
where both decode with ``load_image``: shorter side resized to ``dataset.image_size``, centre
crop) give the same batches. Augmentation is ImageNet's random resized crop (scale 0.08-1,
aspect 3/4-4/3, torchvision's rule with 10 tries) and horizontal flip; each sample's draw comes
from a generator seeded by (epoch seed, position in the epoch), so it does not depend on the
worker that decodes it and a resumed epoch sees the same crops.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gmnas_cli.config.schema import DatasetConfig
from gmnas_cli.data.imagenet.images import load_image
from gmnas_cli.infra.errors import DataError
from gmnas_cli.infra.seeding import derive_seed

Item = tuple[Path, int]


def crop_box(w: int, h: int, gen: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """torchvision ``RandomResizedCrop.get_params`` with a seeded generator: (left, top, width, height)."""
    area = w * h
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(2, generator=gen, dtype=torch.float64).tolist()
        target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1])
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
            return left, top, cw, ch
    in_ratio = w / h  # fallback: the central crop of the clamped aspect ratio
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        cw, ch = int(round(h * ratio[1])), h
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def load_augmented(cfg: DatasetConfig, path: Path, size: int, seed: int) -> np.ndarray:
    """3 x size x size uint8: a random resized crop and a random horizontal flip of ``path``."""
    gen = torch.Generator().manual_seed(seed)
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            left, top, cw, ch = crop_box(img.size[0], img.size[1], gen)
            img = img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))
            if bool(torch.rand(1, generator=gen) < 0.5):
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            arr = np.array(img, dtype=np.uint8)
    except Exception as exc:
        raise DataError(f"dataset {cfg.name}: {path} is not a readable image ({type(exc).__name__}: {exc})") from None
    return arr.transpose(2, 0, 1)


class _Folder(torch.utils.data.Dataset):
    """Decodes ``items[i]``; an index is ``(i, sample seed)`` (seed ``None``: no augmentation)."""

    def __init__(self, cfg: DatasetConfig, items: list[Item]) -> None:
        self.cfg, self.items = cfg, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: tuple[int, int | None]) -> tuple[torch.Tensor, int]:
        i, seed = index
        path, label = self.items[i]
        size = int(self.cfg.image_size)
        arr = load_image(self.cfg, path, size) if seed is None else load_augmented(self.cfg, path, size, seed)
        return torch.from_numpy(arr), label


@dataclass
class StreamingData:
    """Image folders read on the fly; ``halves`` as ``ImageData.halves`` (weights, held-out)."""

    cfg: DatasetConfig
    weights: list[Item]
    holdout: list[Item]
    test_items: list[Item]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    split_record: dict | None = None

    in_channels = 3

    @property
    def image_size(self) -> int:
        return int(self.cfg.image_size)

    def to(self, device: torch.device) -> StreamingData:
        return StreamingData(self.cfg, self.weights, self.holdout, self.test_items, self.num_classes, self.mean,
                             self.std, device, self.split_record)

    def halves(self) -> tuple[StreamSplit, StreamSplit]:
        """valid_size=0: equal halves by index (an odd last image only in ``full_train``)."""
        held = self.holdout if int(self.cfg.valid_size) else self.holdout[: len(self.weights)]
        return StreamSplit(self, self.weights), StreamSplit(self, held)

    def test(self) -> StreamSplit:
        return StreamSplit(self, self.test_items)

    def full_train(self) -> StreamSplit:
        return StreamSplit(self, self.weights + self.holdout)


class StreamSplit:
    """A list of image files that yields normalised, optionally augmented minibatches on the device."""

    def __init__(self, data: StreamingData, items: list[Item]) -> None:
        self.data, self.items = data, items
        dev = data.device
        self._mean = torch.tensor(data.mean, device=dev).view(1, -1, 1, 1) * 255.0
        self._std = torch.tensor(data.std, device=dev).view(1, -1, 1, 1) * 255.0

    def __len__(self) -> int:
        return len(self.items)

    @property
    def y(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.items], dtype=torch.int64)

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        n = len(self)
        return n // batch_size if drop_last else (n + batch_size - 1) // batch_size

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self._mean) / self._std

    def batches(self, batch_size: int, seed: int | None, augment: bool = False,
                drop_last: bool = False, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Minibatches in ``Split.batches``'s seeded order (``seed=None``: file order)."""
        n = len(self)
        gen = torch.Generator().manual_seed(seed if seed is not None else 0)
        order = torch.randperm(n, generator=gen) if seed is not None else torch.arange(n)
        stop = n - (n % batch_size) if drop_last else n
        base = seed if seed is not None else 0
        index_batches = [[(int(i), derive_seed(base, "aug", lo + j) if augment else None)
                          for j, i in enumerate(order[lo : lo + batch_size].tolist())]
                         for lo in range(0, stop, batch_size)][start:]
        if not index_batches:
            return
        dev = self.data.device
        workers = int(self.data.cfg.workers)
        loader = torch.utils.data.DataLoader(_Folder(self.data.cfg, self.items), batch_sampler=index_batches,
                                             num_workers=workers, pin_memory=dev.type == "cuda",
                                             persistent_workers=False, prefetch_factor=2 if workers else None)
        for x, y in loader:
            yield self.normalise(x.to(dev, non_blocking=True)), y.to(dev, non_blocking=True)
