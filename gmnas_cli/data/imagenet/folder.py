"""ImageNet-style image folders: ``dataset.root/train/<class>/*`` and ``dataset.root/val/<class>/*``.

The classes are the sorted sub-folders of ``train``; ``val`` may only use those. Each image is
decoded with PIL (a few threads), converted to RGB, its shorter side resized to
``dataset.image_size`` and centre-cropped to a square, and kept in memory as uint8.

Holding every image in memory suits subsets (a few classes, ``dataset.limit``, small
``image_size``); full ImageNet at 224 px (about 190 GB as uint8) is streamed instead
(``data/imagenet/stream.py``; ``dataset.loader=auto`` picks by size). ``dataset.valid_size > 0`` holds
out a class-balanced architecture split of that size (ProxylessNAS: 10,000), the same files on
both paths; ``val/`` is the test split.

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

from gmnas_cli.config.schema import DatasetConfig
from gmnas_cli.data.base import DATASETS, ImageData
from gmnas_cli.data.cifar import check_num_classes, require_root
from gmnas_cli.data.imagenet.images import EXPECTED, load_image
from gmnas_cli.data.imagenet.stream import StreamingData
from gmnas_cli.infra.errors import DataError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SEED = 20220125  # the fixed file-order permutation


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


def _load_split(cfg: DatasetConfig, items: list[tuple[Path, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``items`` with a few threads into (N x 3 x S x S uint8, N int64)."""
    size = cfg.image_size
    x = torch.empty(len(items), 3, size, size, dtype=torch.uint8)
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, arr in enumerate(pool.map(lambda it: load_image(cfg, it[0], size), items)):
            x[i] = torch.from_numpy(arr)
    y = torch.tensor([label for _, label in items], dtype=torch.int64)
    return x, y


def _split_dir(cfg: DatasetConfig, root: Path, name: str) -> Path:
    path = root / name
    if not path.is_dir():
        raise DataError(f"dataset {cfg.name}: {path} is missing; expected {EXPECTED}")
    return path


IN_MEMORY_BYTES = 4 << 30  # dataset.loader=auto: decode into memory up to 4 GiB of uint8 images
VALID_SEED = 0  # ProxylessNAS DataProvider.VALID_SEED


def balanced_holdout(labels: list[int], valid_size: int, num_classes: int) -> tuple[list[int], list[int]]:
    """(weights indices, held-out indices): ``valid_size // num_classes`` images per class, taken
    in a seeded random order (ProxylessNAS ``random_sample_valid_set``, seed 0)."""
    per_class = valid_size // num_classes
    if per_class < 1:
        raise DataError(f"dataset.valid_size={valid_size} gives no held-out image per class ({num_classes} classes)")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(VALID_SEED)).tolist()
    taken = [0] * num_classes
    weights, held = [], []
    for i in order:
        c = labels[i]
        if taken[c] < per_class:
            held.append(i)
            taken[c] += 1
        else:
            weights.append(i)
    short = [c for c in range(num_classes) if taken[c] < per_class]
    if short:
        raise DataError(f"dataset.valid_size={valid_size}: class {short[0]} has fewer than {per_class + 1} training "
                        f"images (held-out {per_class} per class and at least one to train on)")
    return sorted(weights), sorted(held)


def split_plan(cfg: DatasetConfig) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]], list[tuple[Path, int]], int]:
    """(weights items, held-out items, test items, classes) shared by the in-memory and streaming paths.

    ``dataset.valid_size=0``: the two halves of the class-mixed order (docs/method-facts.md); >0: a
    class-balanced held-out split of that size from the training folder."""
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
    train = _shuffled(train, cfg.limit)
    test = _shuffled(_list_images(cfg, val_dir, classes), cfg.test_limit)
    valid_size = int(getattr(cfg, "valid_size", 0) or 0)
    if valid_size:
        w_idx, h_idx = balanced_holdout([label for _, label in train], valid_size, len(classes))
        return [train[i] for i in w_idx], [train[i] for i in h_idx], test, len(classes)
    half = len(train) // 2
    return train[:half], train[half:], test, len(classes)  # halves() uses train[half : 2 * half]


def use_stream(cfg: DatasetConfig, n_images: int) -> bool:
    mode = str(getattr(cfg, "loader", "memory"))
    if mode != "auto":
        return mode == "stream"
    return n_images * 3 * int(cfg.image_size) ** 2 > IN_MEMORY_BYTES


@DATASETS.register("imagenet", keys=("valid_size", "loader", "workers"))
def load_imagenet(cfg: DatasetConfig):
    """Image folders at ``dataset.image_size``: decoded into memory (small sets) or streamed
    through a DataLoader (``dataset.loader``; auto: streamed above 4 GiB of images)."""
    weights, held, test, n_classes = split_plan(cfg)
    record = split_record(cfg, weights, held)
    if use_stream(cfg, len(weights) + len(held) + len(test)):
        return StreamingData(cfg, weights, held, test, n_classes, MEAN, STD, split_record=record)
    tx, ty = _load_split(cfg, weights + held)
    vx, vy = _load_split(cfg, test)
    return ImageData(tx, ty, vx, vy, num_classes=n_classes, mean=MEAN, std=STD, flip=True,
                     pad=max(1, cfg.image_size // 8), holdout=len(held) if cfg.valid_size else 0,
                     split_record=record)


def split_record(cfg: DatasetConfig, weights: list[tuple[Path, int]], held: list[tuple[Path, int]]) -> dict:
    """The held-out split as written to ``data_split.json``: rule, seed, sizes, files (relative to train/)."""
    root = Path(cfg.root).expanduser() / "train"
    n = len(weights) if not cfg.valid_size else len(held)
    files = [str(p.relative_to(root)) for p, _ in held[:n]]
    return {"rule": "class-balanced, ProxylessNAS random_sample_valid_set" if cfg.valid_size else "second half by index",
            "valid_size": int(cfg.valid_size), "seed": VALID_SEED if cfg.valid_size else SEED,
            "weights_images": len(weights), "heldout_images": len(files), "heldout": files}
