"""Readers of the real on-disk formats, exercised on tiny stand-ins written in tmp_path."""

from __future__ import annotations

import datetime
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gmnas_cli.config.schema import DatasetConfig
from gmnas_cli.data import load_dataset
from gmnas_cli.infra.errors import DataError

RNG = np.random.default_rng(0)


def _dump(path: Path, obj: object, protocol: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _batch(n: int, size: int, labels: list[int], label_key: str) -> dict:
    data = RNG.integers(0, 256, (n, 3 * size * size), dtype=np.uint8)
    return {"batch_label": "stand-in", "data": data, label_key: labels, "filenames": [f"{i}.png" for i in range(n)]}


def _cifar10(root: Path, per_batch: int = 4, n_test: int = 6, protocol: int = 2) -> dict[str, dict]:
    folder = root / "cifar-10-batches-py"
    batches = {}
    for i in range(1, 6):
        batches[f"data_batch_{i}"] = _batch(per_batch, 32, list(RNG.integers(0, 10, per_batch)), "labels")
    batches["test_batch"] = _batch(n_test, 32, list(RNG.integers(0, 10, n_test)), "labels")
    for name, b in batches.items():
        _dump(folder / name, b, protocol)
    _dump(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072})
    return batches


def _cfg(name: str, root: Path | str, **kw) -> DatasetConfig:
    return DatasetConfig(name=name, root=str(root), **kw)


def _error(cfg: DatasetConfig) -> str:
    with pytest.raises(DataError) as exc:
        load_dataset(cfg)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_reads_batches_in_order(tmp_path: Path, protocol: int) -> None:
    batches = _cifar10(tmp_path, protocol=protocol)
    data = load_dataset(_cfg("cifar10", tmp_path))
    assert data.train_x.shape == (20, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (6, 3, 32, 32)
    assert data.train_y.dtype == torch.int64 and data.test_y.dtype == torch.int64
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    want_x = np.concatenate([b["data"] for b in train]).reshape(-1, 3, 32, 32)  # channel-major
    assert np.array_equal(data.train_x.numpy(), want_x)
    assert data.train_y.tolist() == [int(v) for b in train for v in b["labels"]]
    assert data.test_y.tolist() == [int(v) for v in batches["test_batch"]["labels"]]
    assert data.num_classes == 10 and data.in_channels == 3 and data.image_size == 32
    assert data.flip and data.pad == 4 and len(data.mean) == len(data.std) == 3
    assert all(0 < m < 1 for m in data.mean) and all(0 < s < 1 for s in data.std)


def test_cifar10_limits_and_batch_folder_as_root(tmp_path: Path) -> None:
    batches = _cifar10(tmp_path)
    data = load_dataset(_cfg("cifar10", tmp_path / "cifar-10-batches-py", limit=6, test_limit=2))
    assert len(data.train_y) == 6 and len(data.test_y) == 2
    first = np.concatenate([batches["data_batch_1"]["data"], batches["data_batch_2"]["data"]])[:6]
    assert np.array_equal(data.train_x.numpy(), first.reshape(-1, 3, 32, 32))


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    train = _batch(12, 32, list(RNG.integers(0, 100, 12)), "fine_labels")
    train["coarse_labels"] = [0] * 12
    test = _batch(5, 32, list(RNG.integers(0, 100, 5)), "fine_labels")
    _dump(folder / "train", train)
    _dump(folder / "test", test)
    _dump(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                            "coarse_label_names": [f"c{i}" for i in range(20)]})
    data = load_dataset(_cfg("cifar100", tmp_path, num_classes=100))
    assert data.train_x.shape == (12, 3, 32, 32) and data.test_x.shape == (5, 3, 32, 32)
    assert data.train_y.tolist() == [int(v) for v in train["fine_labels"]]
    assert data.num_classes == 100
    # CIFAR-100's own statistics (xautodl, official GM-NAS _data_transforms_cifar100), not CIFAR-10's
    assert (data.mean, data.std) == ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
    msg = _error(_cfg("cifar100", tmp_path, num_classes=10))
    assert "dataset.num_classes=10" in msg and "100" in msg


@pytest.mark.parametrize("root", ["", "???"])
def test_unset_root_says_what_to_set(root: str) -> None:
    for name in ("cifar10", "cifar100", "imagenet16", "imagenet"):
        msg = _error(_cfg(name, root))
        assert "dataset.root=PATH" in msg and name in msg


def test_missing_root_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    for name in ("cifar10", "imagenet16", "imagenet"):
        msg = _error(_cfg(name, missing))
        assert str(missing) in msg and "does not exist" in msg


def test_missing_cifar_file_is_named(tmp_path: Path) -> None:
    _cifar10(tmp_path)
    gone = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    gone.unlink()
    msg = _error(_cfg("cifar10", tmp_path))
    assert f"{gone} is missing" in msg and "data_batch_1..5" in msg and "test_batch" in msg
    msg = _error(_cfg("cifar100", tmp_path, num_classes=100))
    assert str(tmp_path / "cifar-100-python") in msg and "train, test and meta" in msg


def test_malformed_cifar_files(tmp_path: Path) -> None:
    _cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    bad.write_bytes(b"this is not a pickle")
    assert f"{bad} is not a readable pickle" in _error(_cfg("cifar10", tmp_path))
    _dump(bad, {"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4})
    msg = _error(_cfg("cifar10", tmp_path))
    assert str(bad) in msg and "N x 3072 uint8" in msg
    _dump(bad, {"data": np.zeros((4, 3072), np.uint8), "labels": [0] * 3})
    assert "one integer label per image" in _error(_cfg("cifar10", tmp_path))
    _dump(bad, {"data": np.zeros((4, 3072), np.uint8)})
    assert "needs keys" in _error(_cfg("cifar10", tmp_path))
    _dump(bad, {"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 2, 10]})
    assert "outside 0..9" in _error(_cfg("cifar10", tmp_path))
    _dump(bad, {"data": datetime.date(2020, 1, 1), "labels": [0]})  # a foreign object is refused
    assert "not a readable pickle" in _error(_cfg("cifar10", tmp_path))


# ---------------------------------------------------------------- ImageNet16-120


def _imagenet16(root: Path) -> tuple[list[dict], dict]:
    train = []
    for i in range(1, 11):
        labels = [int(v) for v in RNG.integers(1, 241, 6)] + [120, 1]  # both edges of the 120 filter
        train.append(_batch(8, 16, labels, "labels"))
        _dump(root / f"train_data_batch_{i}", train[-1])
    val = _batch(10, 16, [int(v) for v in RNG.integers(1, 241, 9)] + [121], "labels")
    _dump(root / "val_data", val)
    return train, val


def test_imagenet16_keeps_120_classes_zero_based(tmp_path: Path) -> None:
    train, val = _imagenet16(tmp_path)
    data = load_dataset(_cfg("imagenet16", tmp_path, num_classes=120, image_size=16))
    x = np.concatenate([b["data"] for b in train]).reshape(-1, 3, 16, 16)
    y = np.concatenate([b["labels"] for b in train])
    keep = y <= 120
    assert data.train_x.shape == (int(keep.sum()), 3, 16, 16) and data.train_x.dtype == torch.uint8
    assert np.array_equal(data.train_x.numpy(), x[keep])
    assert data.train_y.tolist() == (y[keep] - 1).tolist()
    assert data.train_y.min() >= 0 and data.train_y.max() <= 119 and 119 in data.train_y.tolist()
    vy = np.asarray(val["labels"])
    assert data.test_y.tolist() == (vy[vy <= 120] - 1).tolist()
    assert data.num_classes == 120 and data.pad == 2 and data.flip
    assert data.mean == pytest.approx((122.68 / 255, 116.66 / 255, 104.01 / 255))

    small = load_dataset(_cfg("imagenet16", tmp_path, num_classes=120, limit=5, test_limit=1))
    assert small.train_y.tolist() == data.train_y[:5].tolist() and len(small.test_y) == 1


def test_imagenet16_errors(tmp_path: Path) -> None:
    _imagenet16(tmp_path)
    assert "num_classes=10" in _error(_cfg("imagenet16", tmp_path, num_classes=10))
    gone = tmp_path / "train_data_batch_7"
    gone.unlink()
    msg = _error(_cfg("imagenet16", tmp_path, num_classes=120))
    assert f"{gone} is missing" in msg and "train_data_batch_1..10 and val_data" in msg
    _dump(gone, {"data": np.zeros((2, 3072), np.uint8), "labels": [1, 2]})  # 32px, not 16px
    assert "N x 768 uint8" in _error(_cfg("imagenet16", tmp_path, num_classes=120))
    _dump(gone, {"data": np.zeros((2, 768), np.uint8), "labels": [0, 1]})  # 0-based: wrong file
    assert "outside 1..1000" in _error(_cfg("imagenet16", tmp_path, num_classes=120))
    (tmp_path / "val_data").write_bytes(b"\x80\x02truncated")
    gone.unlink()
    _dump(gone, {"data": np.zeros((2, 768), np.uint8), "labels": [1, 2]})
    assert "val_data is not a readable pickle" in _error(_cfg("imagenet16", tmp_path, num_classes=120))


# ---------------------------------------------------------------- ImageNet folders


def _image(path: Path, w: int, h: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def _imagenet(root: Path) -> None:
    for c, cls in enumerate(["n02", "n01", "n03"]):
        for i in range(4):
            _image(root / "train" / cls / f"img{i}.{'png' if i % 2 else 'JPEG'}", 20 + 3 * i, 14 + c)
        _image(root / "val" / cls / "v0.png", 12, 12)
    (root / "train" / "n01" / "notes.txt").write_text("not an image")  # ignored, like ImageFolder


def test_imagenet_folders(tmp_path: Path) -> None:
    _imagenet(tmp_path)
    data = load_dataset(_cfg("imagenet", tmp_path, num_classes=3, image_size=8))
    assert data.train_x.shape == (12, 3, 8, 8) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (3, 3, 8, 8) and data.train_y.dtype == torch.int64
    assert sorted(data.train_y.tolist()) == [0] * 4 + [1] * 4 + [2] * 4  # classes sorted by name
    assert sorted(data.test_y.tolist()) == [0, 1, 2]
    assert data.train_y.tolist() != sorted(data.train_y.tolist())  # fixed shuffle mixes classes
    assert data.num_classes == 3 and data.flip and data.pad == 1
    again = load_dataset(_cfg("imagenet", tmp_path, num_classes=3, image_size=8, limit=5, test_limit=2))
    assert torch.equal(again.train_x, data.train_x[:5]) and again.train_y.tolist() == data.train_y[:5].tolist()
    assert len(again.test_y) == 2


def test_imagenet_resize_and_centre_crop(tmp_path: Path) -> None:
    img = np.zeros((10, 20, 3), np.uint8)  # 20 wide, 10 high: left half black, right half white
    img[:, 10:] = 255
    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.fromarray(img).save(tmp_path / split / "a" / "x.png")
    data = load_dataset(_cfg("imagenet", tmp_path, num_classes=1, image_size=8))
    x = data.train_x[0]  # resized to 16x8, centre crop keeps columns 4..11
    assert x.shape == (3, 8, 8)
    assert (x[:, :, :3] == 0).all() and (x[:, :, 5:] == 255).all()


def test_imagenet_errors(tmp_path: Path) -> None:
    _imagenet(tmp_path)
    assert "has 3 classes" in _error(_cfg("imagenet", tmp_path, num_classes=1000, image_size=8))
    (tmp_path / "val" / "n99").mkdir()
    msg = _error(_cfg("imagenet", tmp_path, num_classes=3, image_size=8))
    assert str(tmp_path / "val" / "n99") in msg
    (tmp_path / "val" / "n99").rmdir()
    bad = tmp_path / "train" / "n03" / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    assert f"{bad} is not a readable image" in _error(_cfg("imagenet", tmp_path, num_classes=3, image_size=8))
    bad.unlink()
    for f in (tmp_path / "val").rglob("*"):
        if f.is_file():
            f.unlink()
    for d in (tmp_path / "val").iterdir():
        d.rmdir()
    (tmp_path / "val").rmdir()
    msg = _error(_cfg("imagenet", tmp_path, num_classes=3, image_size=8))
    assert f"{tmp_path / 'val'} is missing" in msg and "train/<class>" in msg


# ---------------------------------------------------------------- digits and the index split


def test_digits_and_halves() -> None:
    data = load_dataset(DatasetConfig(name="digits", num_classes=10, in_channels=1, image_size=8))
    assert len(data.train_y) + len(data.test_y) == 1797
    assert data.train_x.shape[1:] == (1, 8, 8) and data.test_x.shape[1:] == (1, 8, 8)
    assert data.in_channels == 1 and data.image_size == 8 and data.num_classes == 10
    assert set(data.train_y.tolist()) == set(range(10))
    w, a = data.halves()
    n = len(data.train_y)
    assert len(w) == len(a) == n // 2
    assert torch.equal(w.x, data.train_x[: n // 2]) and torch.equal(w.y, data.train_y[: n // 2])
    assert torch.equal(a.x, data.train_x[n // 2 : 2 * (n // 2)]) and torch.equal(a.y, data.train_y[n // 2 : 2 * (n // 2)])
    # disjoint by index: the two views do not share any storage
    w_lo, a_lo = w.x.data_ptr(), a.x.data_ptr()
    assert w_lo + w.x.numel() * w.x.element_size() <= a_lo
