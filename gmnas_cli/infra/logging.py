"""Console output: rich progress bars on a terminal, plain per-epoch lines everywhere."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gmnas_cli.infra.interrupt import loop

T = TypeVar("T")

console = Console(stderr=True)
log = logging.getLogger("gmnas")
if not log.handlers:
    _h = logging.StreamHandler(sys.stderr)
    _h.setFormatter(logging.Formatter("[gmnas] %(message)s"))
    log.addHandler(_h)
    log.setLevel(logging.INFO)
    log.propagate = False

_QUIET = {"value": False}


def set_quiet(quiet: bool) -> None:
    _QUIET["value"] = quiet


@contextmanager
def progress_bar(description: str, total: int, unit: str = "step") -> Iterator[callable]:
    """Yield ``advance()``; draws a rich bar only on an interactive terminal. The loop and its
    count of ``unit`` are what an interrupted command reports (``infra/interrupt.py``)."""
    with loop(description, unit) as cell:
        with _bar(description, total) as draw:
            def advance(n: int = 1, info: str = "") -> None:
                cell[2] += n
                draw(n, info)

            yield advance


@contextmanager
def _bar(description: str, total: int) -> Iterator[callable]:
    if _QUIET["value"] or not console.is_terminal:
        yield lambda n=1, info="": None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=True,
    ) as prog:
        task = prog.add_task(description, total=total, info="")

        def advance(n: int = 1, info: str = "") -> None:
            prog.update(task, advance=n, info=info)

        yield advance


def track(items: Iterable[T], description: str, total: int) -> Iterator[T]:
    with progress_bar(description, total) as advance:
        for item in items:
            yield item
            advance()
