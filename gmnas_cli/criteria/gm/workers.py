"""GM edges scored in parallel CPU processes (``criterion.workers``).

The edges of one split are scored independently: each edge's minibatches, sampled paths and
per-op gradients are seeded by (seed, leaf, split, edge, minibatch) only (criteria/gm/criterion.py), so a forked
worker computes exactly the numbers the parent would. Workers are forked after the supernet is
built (copy-on-write, nothing to pickle but the scores); each runs one torch thread (more deadlock
after a fork, see ``scored_edges``) and draws no progress bars; the scores are bitwise those of a
sequential run at one thread (at more threads, equal within float rounding). Results come back in edge order, so logs,
``gm_progress`` files (resume) and decisions are those of a sequential run.

CPU only (CUDA contexts do not survive a fork), one process per job (not under torchrun ranks,
whose collectives must stay in step), and not with ``criterion.early_stop`` (its sequential test
scores all edges together on the same minibatches); ``pipeline/validate.py`` refuses those.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Callable, Iterator
from typing import Any

import torch

from gmnas_cli.infra import distributed
from gmnas_cli.infra.logging import set_quiet
from gmnas_cli.infra.threads import usable_cpus

_JOB: dict[str, Any] = {}  # set before the fork: the scoring function the workers inherit


def resolve_workers(workers: int, device: torch.device) -> int:
    """``criterion.workers``: 0 means one per CPU this process may use (infra/threads.py); 1 (in this
    process) off the CPU and under torchrun ranks."""

    if device.type != "cpu" or distributed.active():
        return 1
    return usable_cpus() if int(workers) == 0 else int(workers)


def _init(threads: int) -> None:
    # The parent reports an interruption in one line; a worker just ends (the pool stops it with
    # SIGTERM, and Ctrl-C reaches the whole process group).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    set_quiet(True)  # one terminal: the parent logs each edge's result


def _score(edge: str) -> tuple[str, dict[str, Any]]:
    return edge, _JOB["score"](edge)


def scored_edges(score: Callable[[str], dict[str, Any]], edges: list[str], workers: int
                 ) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(edge, score(edge))`` for each edge in order, computed by ``workers`` forked processes
    (in this process when 1 or fewer edges or workers)."""
    workers = min(workers, len(edges))
    if workers <= 1:
        for edge in edges:
            yield edge, score(edge)
        return
    # One torch thread per worker: a forked child that starts a multi-threaded OpenMP pool after the
    # parent used one hangs (GNU libgomp is not fork-safe; 2 threads per worker deadlocked here).
    threads = 1
    _JOB["score"] = score
    try:
        with mp.get_context("fork").Pool(workers, initializer=_init, initargs=(threads,)) as pool:
            yield from pool.imap(_score, edges, chunksize=1)
    finally:
        _JOB.clear()
