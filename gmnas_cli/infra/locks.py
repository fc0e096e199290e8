"""Advisory file locks in an experiment's ``locks/`` folder (``fcntl.flock``; the kernel drops them
when the process dies, so a killed stage never leaves a lock behind).

- ``exclusive(root, name)``: one holder at a time (a predecessor brought by parallel jobs).
- ``shared(root, name)``: held by every process running a stage (parallel leaf jobs together);
  ``is_held`` tells ``gmnas status`` whether a stage is running now or was interrupted.
- ``stage_lock(root, name)``: one run of a stage at a time; a second is refused at once, naming the
  process and host that hold it (docs/reliability.md: what this guarantees on shared file systems).
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gmnas_cli.infra import ranks
from gmnas_cli.infra.errors import StageError
from gmnas_cli.infra.logging import log

LOCK_DIR = "locks"


def lock_path(root: Path, name: str) -> Path:
    return Path(root) / LOCK_DIR / f"{name}.lock"


@contextmanager
def _locked(root: Path, name: str, mode: int, waiting: str) -> Iterator[None]:
    if not ranks.is_main():  # data parallel: locks are between jobs; rank 0 holds them for its job
        ranks.barrier()
        yield
        return
    path = lock_path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(waiting)
            fcntl.flock(fd, mode)
        except OSError as err:  # a file system without flock (ENOLCK): run unlocked, say so
            log.warning(f"{path}: no file locks here ({err.strerror}); parallel jobs are not serialised")
        ranks.barrier()  # the other ranks go on once rank 0 holds the lock
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def holder(path: Path) -> str:
    """Who holds a stage lock, as its holder wrote it (``pid <n> on <host>``)."""
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "another process"


@contextmanager
def stage_lock(root: Path, name: str, exclusive: bool = True, what: str = "") -> Iterator[None]:
    """Hold ``name`` for a whole stage without waiting: exclusive (one run of the stage) or shared
    (parallel leaf jobs of one search). Held by another run: a one-line ``StageError`` naming the
    holder's pid and host. The kernel drops the lock when the process dies, however it dies."""
    if not ranks.is_main():  # data parallel: rank 0 holds it for its job
        ranks.barrier()
        yield
        return
    path = lock_path(root, name)
    Path(root).mkdir(parents=True, exist_ok=True)  # first: an error names the experiment folder
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StageError(f"{what or name}: another run holds {path} ({holder(path)}); wait for it to "
                             "finish or stop it (a stopped or killed run releases the lock)") from None
        except OSError as err:  # a file system without flock (ENOLCK): run unlocked, say so
            log.warning(f"{path}: no file locks here ({err.strerror}); a second run is not refused")
        else:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        ranks.barrier()
        yield
    finally:
        os.close(fd)


def exclusive(root: Path, name: str) -> contextmanager:
    """Hold ``name`` alone (blocks while another process holds it)."""
    return _locked(root, name, fcntl.LOCK_EX, f"{name}: another job holds the lock in {root}; waiting")


def shared(root: Path, name: str) -> contextmanager:
    """Hold ``name`` together with other shared holders."""
    return _locked(root, name, fcntl.LOCK_SH, f"{name}: waiting for the lock in {root}")


def is_held(root: Path, name: str) -> bool:
    """True while some process holds ``name`` (shared or exclusive)."""
    path = lock_path(root, name)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no file locks on this file system: nobody can be seen running
        return False
    finally:
        os.close(fd)
    return False
