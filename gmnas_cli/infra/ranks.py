"""The ranks of one data-parallel job, without importing torch (``infra/distributed.py`` holds the
shards and collectives and re-exports these).

A process group exists only in a process that imported torch and joined it
(``distributed.setup``), so every helper here reads ``torch.distributed`` from ``sys.modules``:
``gmnas status`` and ``gmnas tree`` (which import no torch) see one process, exactly as before.
Rank 0 alone writes files (``one_writer``), framed by two barriers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gmnas_cli.infra.errors import StageError


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


_STATE: dict = {"env": None, "shards": 1, "writing": 0}


def _read_env() -> DistEnv:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them (run.py: env:// initialisation); under
    submitit with several tasks, submitit's helper exports them first (its torch_distributed example)."""
    if "WORLD_SIZE" not in os.environ and os.environ.get("SUBMITIT_EXECUTOR"):
        import submitit

        if submitit.JobEnvironment().num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistEnv(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def env() -> DistEnv:
    if _STATE["env"] is None:
        _STATE["env"] = _read_env()
    return _STATE["env"]


def rank() -> int:
    return env().rank


def world_size() -> int:
    return env().world_size


def is_main() -> bool:
    return env().rank == 0


def _dist() -> Any:
    """``torch.distributed`` where torch is loaded, else None (then no process group exists)."""
    torch = sys.modules.get("torch")
    return getattr(torch, "distributed", None)


def active() -> bool:
    """Several ranks with an initialised process group."""
    dist = _dist()
    return env().world_size > 1 and dist is not None and dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if active():
        _dist().barrier()


def agree(value):
    """Rank 0's ``value`` on every rank: a decision read from files that other jobs may change
    (sibling leaf jobs, a predecessor finishing) must not differ between the ranks of one job."""
    if not active():
        return value
    box = [value]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


# -- one writer ---------------------------------------------------------------------------------
@contextlib.contextmanager
def one_writer() -> Iterator[bool]:
    """``with one_writer() as write: if write: ...``: rank 0 writes, the others wait for it.

    Barriers before and after: no rank reads the file system while rank 0 changes it, so every rank
    sees the same files between two writes. Nested uses (a checkpoint's rotation and its write) are
    one write. A single process writes with no barrier."""
    if not active():
        yield True
        return
    outer = _STATE["writing"] == 0
    if outer:
        _dist().barrier()
    _STATE["writing"] += 1
    try:
        yield is_main()
    finally:
        _STATE["writing"] -= 1
    if outer:
        _dist().barrier()


def _tensor_digest(obj, h) -> None:
    torch = sys.modules["torch"]  # only called with a process group, i.e. torch loaded
    if isinstance(obj, torch.Tensor):
        h.update(obj.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if obj.numel() else b"")
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(str(k).encode())
            _tensor_digest(obj[k], h)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _tensor_digest(v, h)


def check_ranks_agree(state: dict, what: str) -> None:
    """Every rank holds bitwise the same tensors in ``state`` (weights, optimizer, alpha), else
    StageError: ranks that diverged (a missing all-reduce) must not be saved as one model."""
    if not active():
        return
    h = hashlib.sha256()
    _tensor_digest(state, h)
    digests: list[str | None] = [None] * world_size()
    _dist().all_gather_object(digests, h.hexdigest())
    if len(set(digests)) > 1:
        bad = [r for r, d in enumerate(digests) if d != digests[0]]
        raise StageError(f"{what}: ranks {bad} hold other tensors than rank 0 (the ranks diverged)")
