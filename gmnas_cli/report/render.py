"""Render a ``Table``: a rich console table, and CSV / Markdown / LaTeX files (atomic writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.io import atomic_write_text
from gmnas_cli.report.listing import arch_keys, print_listing
from gmnas_cli.report.table import Table

FORMATS = ("csv", "md", "tex")


def check_formats(formats: list[str]) -> None:
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ConfigError(f"report.formats: unknown format {bad[0]!r}; valid: {', '.join(FORMATS)}")


def _header(col: Any) -> str:
    parts = col if isinstance(col, tuple) else (col,)
    return " ".join(str(p) for p in parts if str(p))


def flat(table: Table) -> pd.DataFrame:
    """``table.display`` with the row labels as columns and one header row (CSV, Markdown, console)."""
    df = table.display.reset_index()
    df.columns = [_header(c) for c in df.columns]
    return df


def print_table(table: Table, console: Console | None = None) -> None:
    """Print ``table.display`` as a rich table on stdout; long cells fold onto more lines (never cut)."""
    console = console or Console()
    df = flat(table)
    # architecture strings (not a method's name in an "Architecture" row label, as paper Table 5's)
    archs = [c for c in df.columns if c.lower().startswith("arch") and df[c].astype(str).str.len().max() > 24]
    below: list[tuple[str, str]] = []
    for col in archs:  # a short key in the row, the strings listed below (readable at 80 columns)
        keys, listed = arch_keys([str(v) for v in df[col]])
        df[col] = keys
        below += listed
    rich = RichTable(title=escape(table.title), show_lines=False)
    for i, col in enumerate(df.columns):
        left = i < table.display.index.nlevels or col in archs
        rich.add_column(escape(col), justify="left" if left else "right", overflow="fold")
    for row in df.itertuples(index=False):
        rich.add_row(*[escape(str(v)) for v in row])
    console.print(rich)
    print_listing(console, below)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: Any) -> str:
    """Escape LaTeX specials; ``±`` becomes ``$\\pm$``."""
    out = "".join(_TEX.get(c, c) for c in str(text))
    return out.replace("±", r"$\pm$")


def to_latex(table: Table) -> str:
    df = table.display.copy()
    df = df.map(tex_escape) if hasattr(df, "map") else df.applymap(tex_escape)

    def esc_index(idx: pd.Index) -> pd.Index:
        if isinstance(idx, pd.MultiIndex):
            return pd.MultiIndex.from_tuples([tuple(tex_escape(p) for p in t) for t in idx],
                                             names=[tex_escape(n) if n else n for n in idx.names])
        return pd.Index([tex_escape(v) for v in idx], name=tex_escape(idx.name) if idx.name else None)

    df.index, df.columns = esc_index(df.index), esc_index(df.columns)
    return df.to_latex(escape=False, caption=tex_escape(table.title), label=f"tab:{table.name}",
                       multicolumn_format="c")


def write_table(table: Table, out: Path, formats: list[str]) -> list[Path]:
    """Write ``<name>.csv`` (+ ``<name>_raw.csv`` with numbers), ``.md``, ``.tex`` into ``out``."""
    written: list[Path] = []
    for fmt in formats:
        path = out / f"{table.name}.{fmt}"
        if fmt == "csv":
            atomic_write_text(path, flat(table).to_csv(index=False))
            raw = out / f"{table.name}_raw.csv"
            atomic_write_text(raw, table.data.to_csv(index=False))
            written.append(raw)
        elif fmt == "md":
            atomic_write_text(path, f"**{table.title}**\n\n{flat(table).to_markdown(index=False)}\n")
        elif fmt == "tex":
            atomic_write_text(path, to_latex(table))
        written.append(path)
    return written
