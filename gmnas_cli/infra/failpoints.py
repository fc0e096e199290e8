"""Test failpoints: environment-driven hooks that kill or preempt this process at named events.

Unset environment variables make them no-ops; the reliability tests set them to interrupt a stage
at a precise write (``tests/test_resume.py``) or to deliver SLURM's preemption signal.
"""

from __future__ import annotations

import fnmatch
import os
import signal

_KILL_COUNTS: dict[str, int] = {}


def kill_point(event: str) -> None:
    """Test hook: ``GMNAS_TEST_KILL_AFTER=<event pattern>:<n>`` SIGKILLs this process at the n-th
    matching event, e.g. ``write:ckpt.pt:2`` (after the 2nd checkpoint write), ``temp:*:1`` (a
    temporary file written, not yet renamed), ``rotated:ckpt.pt:1`` (``.prev`` updated, the new
    checkpoint not yet written). Unset: nothing happens."""
    preempt_point(event)
    spec = os.environ.get("GMNAS_TEST_KILL_AFTER")
    if not spec:
        return
    pattern, _, count = spec.rpartition(":")
    if fnmatch.fnmatchcase(event, pattern):
        _KILL_COUNTS[pattern] = _KILL_COUNTS.get(pattern, 0) + 1
        if _KILL_COUNTS[pattern] == int(count):
            os.kill(os.getpid(), signal.SIGKILL)


def preempt_point(event: str) -> None:
    """Test hook: ``GMNAS_TEST_PREEMPT_AFTER=<event pattern>:<marker file>`` sends this process
    SIGUSR2 (SLURM's preemption notice under submitit) at the first matching event, once: the
    marker, created atomically, stops the requeued job (and sibling jobs) from doing it again."""
    spec = os.environ.get("GMNAS_TEST_PREEMPT_AFTER")
    if not spec:
        return
    pattern, _, marker = spec.rpartition(":")
    if not fnmatch.fnmatchcase(event, pattern):
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGUSR2)
