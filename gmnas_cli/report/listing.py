"""Architecture strings under a console table instead of in it: a table row keeps a short key
(leaf id, ``A1``) and stays readable in an 80-column terminal; the strings, listed below, wrap
whole (an NB201 string is about 90 characters, a DARTS genotype about 400)."""

from __future__ import annotations

import re

from rich.console import Console
from rich.text import Text


def arch_keys(archs: list[str | None]) -> tuple[list[str], list[tuple[str, str]]]:
    """A short key per row (``A1``, ``A2``, ...; the same string, the same key; ``-`` for none) and the
    (key, string) pairs to list below the table."""
    keys: dict[str, str] = {}
    out = []
    for arch in archs:
        if arch is None or str(arch) in ("", "-", "None", "nan"):
            out.append("-")
            continue
        out.append(keys.setdefault(str(arch), f"A{len(keys) + 1}"))
    return out, [(k, a) for a, k in keys.items()]


def _pieces(arch: str) -> list[str]:
    """The string cut after its joints (NB201 ``+``, ``, `` in a genotype, `` | `` between stages):
    joined again they are the string itself."""
    return [p for p in re.split(r"(?<=\+)|(?<=, )|(?<= \| )", arch) if p]


def wrap_arch(arch: str, width: int) -> list[str]:
    """Lines of at most ``width`` characters, broken at the string's joints where it can be (a piece
    longer than a line is cut); the lines concatenated are ``arch``."""
    lines = [""]
    for piece in _pieces(arch):
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return [ln[i:i + width] for ln in lines for i in range(0, max(len(ln), 1), width)]


def print_listing(console: Console, items: list[tuple[str, str]], heading: str = "architectures") -> None:
    """``key`` then its string below a table, indented and broken at its joints (never cut short)."""
    if not items:
        return
    console.print(Text(f"{heading}:", style="bold"))
    width = max(console.width - 4, 20)
    for key, arch in items:
        if len(key) + len(arch) + 4 <= console.width:
            console.print(Text(f"  {key}: ", style="bold") + Text(arch), soft_wrap=True)
            continue
        console.print(Text(f"  {key}:", style="bold"))
        for line in wrap_arch(arch, width):
            console.print(Text(f"    {line}"), soft_wrap=True)
