"""ImageNet-style image folders: ``dataset.root/train/<class>/*`` and ``dataset.root/val/<class>/*``.

The classes are the sorted sub-folders of ``train``; ``val`` may only use those. Each image is
decoded with PIL (a few threads), converted to RGB, its shorter side resized to
``dataset.image_size`` and centre-cropped to a square, and kept in memory as uint8.

Holding every image in memory suits subsets (a few classes, ``dataset.limit``, small
``image_size``); full ImageNet at 224 px (about 190 GB as uint8) would need a streaming loader.

Files are listed in sorted (class, name) order and then shuffled by one fixed permutation, so the
index order mixes classes: ``limit`` keeps a class-mixed subset and ``ImageData.halves()`` (a split
by index) gives both halves every class.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gmnas_cli.config.schema import DatasetConfig
from gmnas_cli.data.base import DATASETS, ImageData
from gmnas_cli.data.cifar import check_num_classes, require_root
from gmnas_cli.errors import DataError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SEED = 20220125  # the fixed file-order permutation
EXPECTED = "image folders train/<class>/* and val/<class>/* (e.g. .JPEG files) under dataset.root"


def _list_images(cfg: DatasetConfig, split_dir: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(path, label) for every image file, sorted by class then name; unknown classes are errors."""
    index = {c: i for i, c in enumerate(classes)}
    items: list[tuple[Path, int]] = []
    for d in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if d.name not in index:
            raise DataError(f"dataset {cfg.name}: {d} is a class missing from {split_dir.parent / 'train'}; "
                            f"expected {EXPECTED}")
        files = sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in EXTENSIONS)
        items.extend((f, index[d.name]) for f in files)
    return items


def _shuffled(items: list[tuple[Path, int]], limit: int) -> list[tuple[Path, int]]:
    """The items in one fixed class-mixing order, cut to ``limit`` when > 0."""
    order = np.random.default_rng(SEED).permutation(len(items))
    picked = [items[i] for i in order]
    return picked[:limit] if limit > 0 else picked


def _load_image(cfg: DatasetConfig, path: Path, size: int) -> np.ndarray:
    """3 x size x size uint8: shorter side resized to ``size``, then centre-cropped."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when possible
            img = img.convert("RGB")
            w, h = img.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            img = img.resize((nw, nh), Image.Resampling.BILINEAR)
            left, top = (nw - size) // 2, (nh - size) // 2
            img = img.crop((left, top, left + size, top + size))
            arr = np.array(img, dtype=np.uint8)  # a writable copy
    except Exception as exc:  # truncated or non-image file
        raise DataError(f"dataset {cfg.name}: {path} is not a readable image ({type(exc).__name__}: "
                        f"{exc}); expected {EXPECTED}") from None
    return arr.transpose(2, 0, 1)


def _load_split(cfg: DatasetConfig, items: list[tuple[Path, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``items`` with a few threads into (N x 3 x S x S uint8, N int64)."""
    size = cfg.image_size
    x = torch.empty(len(items), 3, size, size, dtype=torch.uint8)
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, arr in enumerate(pool.map(lambda it: _load_image(cfg, it[0], size), items)):
            x[i] = torch.from_numpy(arr)
    y = torch.tensor([label for _, label in items], dtype=torch.int64)
    return x, y


def _split_dir(cfg: DatasetConfig, root: Path, name: str) -> Path:
    path = root / name
    if not path.is_dir():
        raise DataError(f"dataset {cfg.name}: {path} is missing; expected {EXPECTED}")
    return path


@DATASETS.register("imagenet")
def load_imagenet(cfg: DatasetConfig) -> ImageData:
    """Image folders decoded into memory at ``dataset.image_size`` (see the module docstring)."""
    if cfg.image_size < 1:
        raise DataError(f"dataset {cfg.name}: dataset.image_size must be positive, got {cfg.image_size}")
    root = require_root(cfg, "the folder holding train/<class>/* and val/<class>/*")
    train_dir, val_dir = _split_dir(cfg, root, "train"), _split_dir(cfg, root, "val")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"dataset {cfg.name}: {train_dir} has no class folders; expected {EXPECTED}")
    check_num_classes(cfg, len(classes), train_dir)
    train = _list_images(cfg, train_dir, classes)
    if not train:
        raise DataError(f"dataset {cfg.name}: {train_dir} holds no image files; expected {EXPECTED}")
    test = _list_images(cfg, val_dir, classes)
    tx, ty = _load_split(cfg, _shuffled(train, cfg.limit))
    vx, vy = _load_split(cfg, _shuffled(test, cfg.test_limit))
    return ImageData(tx, ty, vx, vy, num_classes=len(classes), mean=MEAN, std=STD, flip=True,
                     pad=max(1, cfg.image_size // 8))
