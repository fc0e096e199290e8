"""A tiny ImageNet-style image-folder stand-in (train/<class>/*.png, val/<class>/*.png)."""

from __future__ import annotations

from pathlib import Path

from gmnas_cli.bench.smoke import write_folder


def write_image_folder(root: Path, classes: int = 3, train: int = 12, val: int = 2, size: int = 40) -> Path:
    """Class c's images are noisy around a class colour, sizes vary a little (non-square)."""
    return write_folder(root, classes, train, val, size)
