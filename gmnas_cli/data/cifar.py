"""CIFAR-10/100 read from torchvision's on-disk python folders (never downloaded).

``dataset.root`` is the folder holding ``cifar-10-batches-py`` (or ``cifar-100-python``), as
torchvision lays it out; the batch folder itself is accepted too. The pickles are read directly,
without torchvision's md5 checks, through an unpickler that only rebuilds numpy arrays.

The small helpers here (root checks, safe pickles, limits, class checks) are shared by the other
pickle and folder readers (``imagenet16``, ``imagenet``).
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gmnas_cli.config.schema import DatasetConfig
from gmnas_cli.data.base import DATASETS, ImageData
from gmnas_cli.infra.errors import DataError

# NAS-Bench-201 (xautodl) normalises CIFAR-10 and CIFAR-100 alike with CIFAR-10's statistics.
CIFAR_MEAN = tuple(v / 255.0 for v in (125.3, 123.0, 113.9))
CIFAR_STD = tuple(v / 255.0 for v in (63.0, 62.1, 66.7))
# CIFAR-100's own statistics (xautodl and the official GM-NAS _data_transforms_cifar100).
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

_NUMPY_GLOBALS = {
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by python 3
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    *((f"numpy.{core}.{mod}", fn) for core in ("core", "_core")
      for mod, fn in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))),
}


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only (no arbitrary code from data files)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


# ---------------------------------------------------------------- shared helpers


def require_root(cfg: DatasetConfig, expected: str) -> Path:
    """``cfg.root`` as an existing folder, or a one-line DataError saying what to set."""
    root = (cfg.root or "").strip()
    if root in ("", "???"):
        raise DataError(f"dataset {cfg.name}: dataset.root is not set; set dataset.root=PATH to {expected}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"dataset {cfg.name}: {path} does not exist or is not a folder; expected {expected}")
    return path


def require_files(cfg: DatasetConfig, folder: Path, names: Sequence[str], expected: str) -> list[Path]:
    """The paths ``folder/name``; the first missing one is a DataError naming it."""
    paths = [folder / n for n in names]
    for p in paths:
        if not p.is_file():
            raise DataError(f"dataset {cfg.name}: {p} is missing; expected {expected}")
    return paths


def read_pickle(cfg: DatasetConfig, path: Path, keys: Sequence[str], expected: str) -> dict[str, Any]:
    """A pickled dict (python-2 pickles: latin1) holding ``keys``, else a DataError naming ``path``."""
    try:
        with path.open("rb") as f:
            obj = _NumpyUnpickler(f, encoding="latin1").load()
    except Exception as exc:  # any unreadable file: truncated, not a pickle, foreign objects
        raise DataError(f"dataset {cfg.name}: {path} is not a readable pickle ({type(exc).__name__}: "
                        f"{exc}); expected {expected}") from None
    if not isinstance(obj, dict) or any(k not in obj for k in keys):
        have = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise DataError(f"dataset {cfg.name}: {path} is malformed: needs keys {list(keys)}, has {have}; "
                        f"expected {expected}")
    return obj


def image_batch(cfg: DatasetConfig, path: Path, obj: dict[str, Any], label_key: str, size: int,
                expected: str) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(N x 3 x size x size uint8, N int64 labels)`` from a CIFAR-style batch dict."""
    data, labels = obj["data"], obj[label_key]
    row = 3 * size * size
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row:
        shape = getattr(data, "shape", type(data).__name__)
        dtype = getattr(data, "dtype", "?")
        raise DataError(f"dataset {cfg.name}: {path} is malformed: 'data' must be N x {row} uint8, got "
                        f"{shape} {dtype}; expected {expected}")
    try:
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        y = None
    if y is None or len(y) != len(data):
        raise DataError(f"dataset {cfg.name}: {path} is malformed: '{label_key}' must hold one integer "
                        f"label per image ({len(data)}); expected {expected}")
    return data.reshape(-1, 3, size, size), y


def apply_limit(x: torch.Tensor, y: torch.Tensor, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` items (all when ``limit <= 0``)."""
    return (x[:limit], y[:limit]) if limit > 0 else (x, y)


def check_num_classes(cfg: DatasetConfig, found: int, where: Path) -> None:
    """DataError when ``dataset.num_classes`` disagrees with the data on disk."""
    if cfg.num_classes != found:
        raise DataError(f"dataset {cfg.name}: dataset.num_classes={cfg.num_classes} but {where} has "
                        f"{found} classes; set dataset.num_classes={found}")


def to_tensors(xs: list[np.ndarray], ys: list[np.ndarray], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated uint8 NCHW images and int64 labels (empty lists give empty tensors)."""
    if not xs:
        return torch.empty(0, 3, size, size, dtype=torch.uint8), torch.empty(0, dtype=torch.int64)
    x = torch.from_numpy(np.ascontiguousarray(np.concatenate(xs)))
    return x, torch.from_numpy(np.concatenate(ys))


# ---------------------------------------------------------------- CIFAR


def _read_split(cfg: DatasetConfig, paths: list[Path], label_key: str, num_classes: int, limit: int,
                expected: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read batches in order, stopping once ``limit`` images are in hand; labels checked in range."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    count = 0
    for path in paths:
        obj = read_pickle(cfg, path, ["data", label_key], expected)
        x, y = image_batch(cfg, path, obj, label_key, 32, expected)
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"dataset {cfg.name}: {path} has labels outside 0..{num_classes - 1}; "
                            f"expected {expected}")
        xs.append(x)
        ys.append(y)
        count += len(y)
        if 0 < limit <= count:
            break
    return apply_limit(*to_tensors(xs, ys, 32), limit)


def _load_cifar(cfg: DatasetConfig, folder_name: str, train: list[str], test: str, meta: str,
                names_key: str, label_key: str, expected: str,
                mean: tuple[float, ...], std: tuple[float, ...]) -> ImageData:
    root = require_root(cfg, f"the folder holding {folder_name}")
    folder = root / folder_name
    if not folder.is_dir() and (root / test).is_file():  # root is the batch folder itself
        folder = root
    if not folder.is_dir():
        raise DataError(f"dataset {cfg.name}: {folder} is missing; expected {expected}")
    paths = require_files(cfg, folder, [*train, test, meta], expected)
    meta_path = paths[-1]
    names = read_pickle(cfg, meta_path, [names_key], expected)[names_key]
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"dataset {cfg.name}: {meta_path} is malformed: '{names_key}' must list the "
                        f"class names; expected {expected}")
    check_num_classes(cfg, len(names), meta_path)
    tx, ty = _read_split(cfg, paths[: len(train)], label_key, len(names), cfg.limit, expected)
    vx, vy = _read_split(cfg, [paths[len(train)]], label_key, len(names), cfg.test_limit, expected)
    if len(ty) == 0:
        raise DataError(f"dataset {cfg.name}: {folder} holds no training images; expected {expected}")
    return ImageData(tx, ty, vx, vy, num_classes=len(names), mean=mean, std=std, flip=True, pad=4)


@DATASETS.register("cifar10")
def load_cifar10(cfg: DatasetConfig) -> ImageData:
    """CIFAR-10: ``data_batch_1..5`` train (50,000), ``test_batch`` test (10,000), 10 classes."""
    expected = ("torchvision's CIFAR-10 python folder cifar-10-batches-py with data_batch_1..5, "
                "test_batch and batches.meta")
    return _load_cifar(cfg, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                       "test_batch", "batches.meta", "label_names", "labels", expected,
                       CIFAR_MEAN, CIFAR_STD)


@DATASETS.register("cifar100")
def load_cifar100(cfg: DatasetConfig) -> ImageData:
    """CIFAR-100 (fine labels): ``train`` (50,000), ``test`` (10,000), 100 classes."""
    expected = "torchvision's CIFAR-100 python folder cifar-100-python with train, test and meta"
    return _load_cifar(cfg, "cifar-100-python", ["train"], "test", "meta", "fine_label_names",
                       "fine_labels", expected, CIFAR100_MEAN, CIFAR100_STD)
