"""Deterministic seeds derived from the experiment seed and a purpose (resume needs no RNG dump)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from the experiment seed and labels, e.g. ``derive_seed(0, "warmup", 3)``."""
    h = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*parts))


@contextmanager
def seeded_init(*parts: object) -> Iterator[None]:
    """Weight initialisation drawn from the purpose-derived seed ``derive_seed(*parts)``: torch's
    CPU generator is seeded for the block and restored after it (``torch.random.fork_rng``), so
    building a network neither depends on nor disturbs the RNG stream around it. The
    ``nn.init`` calls inside modules' constructors take no generator, hence the fork. Networks
    are built on the CPU (or the ``meta`` device) and moved afterwards, so the CUDA generators
    are left alone."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(derive_seed(*parts))
        yield


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
