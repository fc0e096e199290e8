"""In-memory image data, the weights/architecture split by index, and batching on the device.

docs/method-facts.md: the training set is split by index; the first half trains the weights (and gives the
GM gradients), the second half trains the architecture parameters and ranks leaves. The test
split stays apart and is only read by benchmark-free final evaluation (`retrain`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from gmnas_cli.infra.registry import Registry


@dataclass
class ImageData:
    """A data set held as uint8 NCHW tensors (small sets: digits, CIFAR, ImageNet16-120)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool = True  # horizontal flips are label-preserving (not for digits)
    pad: int = 4  # random-crop padding (CIFAR: 4)
    holdout: int = 0  # >0: the last `holdout` training images are the architecture split (imagenet valid_size)
    split_record: dict | None = None  # how the held-out split was drawn (written to data_split.json)

    def __post_init__(self) -> None:
        for name in ("train", "test"):
            x, y = getattr(self, f"{name}_x"), getattr(self, f"{name}_y")
            if x.dtype != torch.uint8 or x.dim() != 4 or len(x) != len(y):
                raise ValueError(f"{name} images must be uint8 NCHW with one label each")

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    def halves(self) -> tuple[Split, Split]:
        """(weights half, architecture half) of the training set, split by index."""
        n = len(self.train_y)
        if self.holdout:
            cut = n - self.holdout
            return (Split(self.train_x[:cut], self.train_y[:cut], self),
                    Split(self.train_x[cut:], self.train_y[cut:], self))
        half = n // 2
        if half == 0:
            raise ValueError("the training set needs at least two images")
        w = Split(self.train_x[:half], self.train_y[:half], self)
        a = Split(self.train_x[half : 2 * half], self.train_y[half : 2 * half], self)
        return w, a

    def test(self) -> Split:
        return Split(self.test_x, self.test_y, self)

    def full_train(self) -> Split:
        return Split(self.train_x, self.train_y, self)

    def to(self, device: torch.device) -> ImageData:
        """Hold the uint8 images on ``device`` once (GPU-resident small data sets)."""
        return ImageData(self.train_x.to(device), self.train_y.to(device), self.test_x.to(device),
                         self.test_y.to(device), self.num_classes, self.mean, self.std, self.flip,
                         self.pad, self.holdout, self.split_record)


class Split:
    """A slice of images that yields normalised, optionally augmented minibatches."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, data: ImageData) -> None:
        self.x, self.y, self.data = x, y, data
        dev = x.device
        self._mean = torch.tensor(data.mean, device=dev).view(1, -1, 1, 1) * 255.0
        self._std = torch.tensor(data.std, device=dev).view(1, -1, 1, 1) * 255.0

    def __len__(self) -> int:
        return len(self.y)

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        n = len(self)
        return n // batch_size if drop_last else (n + batch_size - 1) // batch_size

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self._mean) / self._std

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Random crop with zero padding and horizontal flip, batched on the images' device."""
        return self.apply_augment(x, self.draw_augment(len(x), gen, x.device))

    def draw_augment(self, b: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
        """``[b, 3]`` (crop dy, crop dx, flip) for ``b`` images, drawn on CPU from ``gen`` in this
        order (exact resume), on ``device``."""
        p = self.data.pad
        dy = torch.randint(0, 2 * p + 1, (b,), generator=gen) if p > 0 else torch.zeros(b, dtype=torch.long)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=gen) if p > 0 else torch.zeros(b, dtype=torch.long)
        flip = (torch.rand(b, generator=gen) < 0.5).long() if self.data.flip else torch.zeros(b, dtype=torch.long)
        return torch.stack([dy, dx, flip], dim=1).to(device)

    def apply_augment(self, x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """Crop and flip ``x`` as ``draws`` (``draw_augment``) say; no host copies."""
        b, _, h, w = x.shape
        p = self.data.pad
        if p > 0:
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            rows = draws[:, 0:1] + torch.arange(h, device=x.device)
            cols = draws[:, 1:2] + torch.arange(w, device=x.device)
            idx_b = torch.arange(b, device=x.device).view(b, 1, 1)
            x = padded.permute(0, 2, 3, 1)[idx_b, rows.view(b, h, 1), cols.view(b, 1, w)].permute(0, 3, 1, 2)
        if self.data.flip:
            x = torch.where(draws[:, 2].view(b, 1, 1, 1).bool(), x.flip(-1), x)
        return x

    def batches(self, batch_size: int, seed: int | None, augment: bool = False,
                drop_last: bool = False, start: int = 0,
                predraw: bool | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Minibatches in a seeded order (``seed=None``: index order). ``start`` skips batches.

        ``predraw`` (default: images not on the CPU): the epoch's augmentation draws are made up
        front, in the same generator order, and copied to the device once, so no step copies
        from the host; the same batches as drawing per step."""
        n = len(self)
        dev = self.x.device
        gen = torch.Generator().manual_seed(seed if seed is not None else 0)
        order = torch.randperm(n, generator=gen) if seed is not None else torch.arange(n)
        order = order.to(dev)
        stop = n - (n % batch_size) if drop_last else n
        los = list(range(0, stop, batch_size))
        sizes = [min(batch_size, stop - lo) for lo in los]
        if predraw is None:
            predraw = dev.type != "cpu"
        draws = None
        if augment and predraw:
            draws = torch.cat([self.draw_augment(b, gen, torch.device("cpu")) for b in sizes]).to(dev) \
                if los else None
        for i, lo in enumerate(los):
            idx = order[lo : lo + batch_size]
            if augment and draws is None:
                d = self.draw_augment(len(idx), gen, dev)  # i < start: keeps the generator in step
            elif augment:
                d = draws[lo : lo + len(idx)]
            if i < start:
                continue
            x = self.x[idx]
            if augment:
                x = self.apply_augment(x, d)
            yield self.normalise(x), self.y[idx]


DATASETS: Registry = Registry("dataset", catalog="gmnas_cli.data.catalog")
