"""Ctrl-C and SIGTERM end a command with one line saying where it stopped (exit 130 / 143).

Every write is atomic and every stage resumes from its last checkpoint (docs/reliability.md), so an
interrupted command is rerun as it was typed. ``where()`` names the loop that was running: the stage
(``run_stage``) and the innermost progress bar with its step count (``infra/logging.progress_bar``).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# The stage and innermost loop now running (plain dict writes: cheap enough for every step).
_WHERE: dict[str, Any] = {"stage": "", "loops": []}


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt for SIGINT."""


def set_stage(stage: str) -> None:
    _WHERE.update(stage=stage, last="")


@contextmanager
def loop(description: str, unit: str) -> Iterator[list]:
    """Record a running loop; the yielded cell holds how many of its ``unit`` are done."""
    cell = [description, unit, 0]
    _WHERE["loops"].append(cell)
    try:
        yield cell
    finally:
        _WHERE["loops"].remove(cell)
        _WHERE["last"] = description


def where(command: str) -> str:
    """``split, GM node 2 edge 3<-1, minibatch 40``: the stage, the innermost loop, its step."""
    parts = [_WHERE["stage"] or command]
    if _WHERE["loops"]:
        description, unit, done = _WHERE["loops"][-1]
        parts += [description, f"{unit} {done + 1}"]
    elif _WHERE.get("last"):  # between loops: evaluating, saving
        parts.append(f"after {_WHERE['last']}")
    return ", ".join(parts)


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


@contextmanager
def handled() -> Iterator[None]:
    """While inside: SIGTERM raises ``Terminated``, SIGINT ``KeyboardInterrupt`` (unless ignored,
    as in a background job); the previous handlers come back afterwards."""
    try:
        before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        signal.signal(signal.SIGTERM, _terminate)
        if before[signal.SIGINT] is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread: signals stay as they are
        yield
        return
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)
