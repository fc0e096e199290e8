"""A tiny ImageNet-style image-folder stand-in (train/<class>/*.png, val/<class>/*.png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image_folder(root: Path, classes: int = 3, train: int = 12, val: int = 2, size: int = 40) -> Path:
    """Class c's images are noisy around a class colour, sizes vary a little (non-square)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for c in range(classes):
            d = root / split / f"n{c:02d}"
            d.mkdir(parents=True, exist_ok=True)
            base = np.array([(c * 97) % 256, (c * 53 + 80) % 256, (c * 31 + 160) % 256])
            for i in range(n):
                h, w = size + int(rng.integers(0, 8)), size + int(rng.integers(0, 12))
                img = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"img{i:03d}.png")
    return root
