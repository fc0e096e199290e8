"""The value every table builder of ``gmnas report`` returns."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass
class Table:
    """``display``: formatted strings, rows/columns as in the paper; ``data``: tidy numbers for CSV."""

    name: str
    title: str
    display: pd.DataFrame
    data: pd.DataFrame
