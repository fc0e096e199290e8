"""Mean ± std over seeds (population std, ``ddof=0``, as ``np.std`` in NAS-Bench-201 reports)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def summary(values: Sequence[float]) -> dict[str, float]:
    """``mean``, ``std``, ``n``, ``min``, ``max`` of the finite values (NaNs when there are none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0, "min": math.nan, "max": math.nan}
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size), "min": float(v.min()),
            "max": float(v.max())}


def pm(values: Sequence[float], digits: int = 2) -> str:
    """``"93.72 ± 0.12"`` over at least two values; one value alone (``"93.72"``: a std of one seed
    means nothing); ``"-"`` when there is no value."""
    s = summary(values)
    if s["n"] == 0:
        return "-"
    if s["n"] == 1:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"
