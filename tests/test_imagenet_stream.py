"""dataset=imagenet: the streaming DataLoader path against the in-memory path; the held-out split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gmnas_cli.config.schema import DatasetConfig
from gmnas_cli.data import load_dataset
from gmnas_cli.data.imagenet.stream import StreamingData
from tests._imagefolder import write_image_folder


def _cfg(root: Path, **kw) -> DatasetConfig:
    base = dict(name="imagenet", root=str(root), num_classes=3, image_size=16, workers=0)
    return OmegaConf.structured(DatasetConfig(**{**base, **kw}))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("imagenet"))


@pytest.mark.parametrize("valid_size", [0, 6])
def test_stream_and_memory_give_the_same_batches(folder: Path, valid_size: int) -> None:
    mem = load_dataset(_cfg(folder, loader="memory", valid_size=valid_size))
    stream = load_dataset(_cfg(folder, loader="stream", valid_size=valid_size))
    assert isinstance(stream, StreamingData) and not isinstance(mem, StreamingData)
    for a, b in zip(mem.halves() + (mem.test(),), stream.halves() + (stream.test(),)):
        assert len(a) == len(b)
        for seed in (None, 7):
            (xa, ya), (xb, yb) = next(a.batches(5, seed)), next(b.batches(5, seed))
            assert torch.equal(ya, yb)
            torch.testing.assert_close(xa, xb, rtol=0, atol=0)


def test_holdout_is_class_balanced_and_disjoint(folder: Path) -> None:
    data = load_dataset(_cfg(folder, loader="stream", valid_size=6))
    weights, held = data.halves()
    assert torch.bincount(held.y, minlength=3).tolist() == [2, 2, 2]
    assert not {p for p, _ in weights.items} & {p for p, _ in held.items}
    assert len(weights) + len(held) == 36
    again = load_dataset(_cfg(folder, loader="stream", valid_size=6)).halves()[1]
    assert again.items == held.items  # seeded: the same files every time
    with pytest.raises(Exception, match="valid_size=2 gives no held-out image per class"):
        load_dataset(_cfg(folder, loader="stream", valid_size=2))


def test_stream_augmentation_is_seeded_per_sample(folder: Path) -> None:
    """Worker processes and a resumed start give the same augmented batches."""
    w0 = load_dataset(_cfg(folder, loader="stream")).halves()[0]
    w1 = load_dataset(_cfg(folder, loader="stream", workers=1)).halves()[0]
    a = list(w0.batches(4, 11, augment=True, drop_last=True))
    b = list(w1.batches(4, 11, augment=True, drop_last=True))
    c = list(w0.batches(4, 11, augment=True, drop_last=True, start=2))
    assert len(a) == 4
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert all(torch.equal(x, y[0]) for (x, _), y in zip(c, a[2:]))
    assert not torch.equal(a[0][0], next(w0.batches(4, 11, augment=False))[0])
