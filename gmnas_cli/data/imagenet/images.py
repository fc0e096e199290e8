"""Decoding one image of an ImageNet-style folder at ``dataset.image_size`` (evaluation transform)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from gmnas_cli.config.schema import DatasetConfig
from gmnas_cli.infra.errors import DataError

EXPECTED = "image folders train/<class>/* and val/<class>/* (e.g. .JPEG files) under dataset.root"


def load_image(cfg: DatasetConfig, path: Path, size: int) -> np.ndarray:
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
