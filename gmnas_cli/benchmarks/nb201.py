"""NAS-Bench-201 lookups: a CSV table (columns mapped by config) or the official API files.

Values keep the table's units (accuracy in %). Table 3 of the paper reports these figures.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pandas as pd

from gmnas_cli.benchmarks.base import Benchmark, cfg_get
from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.infra.logging import log

_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def normalize_arch(arch: Any) -> str:
    """A NAS-Bench-201 string with all whitespace removed (the table's spelling)."""
    if not isinstance(arch, str):
        raise StageError(f"nb201: expected a NAS-Bench-201 string like {_EXAMPLE}, got {type(arch).__name__}")
    return "".join(arch.split())


class NB201Table(Benchmark):
    """A CSV with one row per architecture; ``columns`` maps metric names to CSV columns."""

    name = "nb201"
    spaces = ("nb201",)

    def __init__(self, path: str | Path, arch_column: str, columns: dict[str, str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StageError(f"nb201: benchmark table {self.path} not found (set benchmark.path=...)")
        try:
            df = pd.read_csv(self.path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise StageError(f"nb201: cannot read {self.path} as CSV ({str(exc).splitlines()[0]})") from None
        available = ", ".join(map(str, df.columns))
        if not columns:
            raise ConfigError(f"nb201: benchmark.columns is empty; map metric names to columns of {self.path}: "
                              f"{available}")
        for col in [arch_column, *columns.values()]:
            if col not in df.columns:
                raise StageError(f"nb201: column {col!r} not in {self.path}; available: {available}")
        archs = df[arch_column].astype(str).map(normalize_arch)
        dup = archs[archs.duplicated(keep="first")]
        if len(dup):
            row = int(dup.index[0])
            first = int(archs[archs == dup.iloc[0]].index[0])
            raise StageError(f"nb201: {self.path} line {row + 2}: architecture {dup.iloc[0]!r} (column "
                             f"{arch_column!r}) repeats line {first + 2}; keep one row per architecture")
        self._metrics = list(columns)
        self._values = pd.DataFrame({m: checked_column(df[c], m, c, self.path) for m, c in columns.items()})
        self._values.index = archs

    @property
    def metrics(self) -> list[str]:
        return list(self._metrics)

    def __len__(self) -> int:
        return len(self._values)

    def query(self, arch: Any) -> dict[str, float]:
        key = normalize_arch(arch)
        if key not in self._values.index:
            raise StageError(f"nb201: architecture {key!r} is not in {self.path} ({len(self)} architectures); "
                             f"expected a string like {_EXAMPLE}")
        row = self._values.loc[key]
        return {m: None if pd.isna(row[m]) else float(row[m]) for m in self._metrics}  # None: no figure

    def best(self, metric: str) -> tuple[str, float]:
        self._check_metric(metric)
        col = self._values[metric].dropna()
        if col.empty:
            raise StageError(f"nb201: {self.path} has no figure for {metric!r}")
        arch = str(col.idxmax())
        return arch, float(col[arch])

    def ranked(self, metric: str) -> list[tuple[str, float]]:
        """Every architecture of the table, best first by ``metric`` (ties: table order)."""
        self._check_metric(metric)
        col = self._values[metric].dropna().sort_values(ascending=False, kind="stable")
        return [(str(a), float(v)) for a, v in col.items()]


def metric_range(metric: str) -> tuple[float, float]:
    """The values a figure may take: accuracies in %, sizes and losses non-negative."""
    if metric.endswith(("_valid", "_test", "_acc")) or "acc" in metric:
        return 0.0, 100.0
    if metric.startswith(("params", "flops", "macs", "latency")) or "loss" in metric:
        return 0.0, float("inf")
    return float("-inf"), float("inf")


def checked_column(raw: pd.Series, metric: str, column: str, path: Path) -> pd.Series:
    """``raw`` as finite numbers in ``metric``'s range; an empty cell (or a marker pandas reads as
    missing: ``NA``, ``nan``, ``null``) is "no figure" (never selected by ``max``); any other cell that
    is not such a number is refused with its line."""
    values = pd.to_numeric(raw, errors="coerce")
    lo, hi = metric_range(metric)
    empty = raw.isna() | raw.astype(str).str.strip().eq("")
    bad = (~empty & (values.isna() | ~values.between(lo, hi) | values.abs().eq(float("inf"))))
    if bool(bad.any()):
        row = int(bad[bad].index[0])
        want = f"a finite number in [{lo:g}, {hi:g}]" if lo > float("-inf") else "a finite number"
        raise StageError(f"nb201: {path} line {row + 2}, column {column!r}: {str(raw[row])!r} is not {want} "
                         f"({metric}); fix the table or leave the cell empty (no figure)")
    return values.where(~empty)


# Official API: metric -> (dataset, key of get_more_info). The "cifar10-valid" entry trains on the train half.
_API_COLUMNS = {
    "cifar10_valid": "cifar10-valid:valid-accuracy",
    "cifar10_test": "cifar10:test-accuracy",
    "cifar100_valid": "cifar100:valid-accuracy",
    "cifar100_test": "cifar100:test-accuracy",
    "imagenet16_valid": "ImageNet16-120:valid-accuracy",
    "imagenet16_test": "ImageNet16-120:test-accuracy",
}


class NB201Api(Benchmark):
    """The official ``.pth``/NATS files through ``nats_bench`` or ``nas_201_api`` (optional packages).

    ``columns`` maps a metric to ``"<dataset>:<get_more_info key>"`` (defaults above).
    """

    name = "nb201"
    spaces = ("nb201",)

    def __init__(self, path: str | Path, columns: dict[str, str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise StageError(f"nb201: benchmark file {self.path} not found (set benchmark.path=...)")
        self.columns = {m: c for m, c in (columns or _API_COLUMNS).items() if ":" in c} or dict(_API_COLUMNS)
        self.api = self._open()

    def _open(self) -> Any:
        try:
            nats = importlib.import_module("nats_bench")
            return nats.create(str(self.path), "tss", fast_mode=True, verbose=False)
        except ImportError:
            pass
        try:
            api = importlib.import_module("nas_201_api")
        except ImportError:
            raise StageError(f"nb201: reading {self.path} needs the `nats_bench` or `nas_201_api` package "
                             "(pip install nats_bench); or give a CSV table as benchmark.path") from None
        return api.NASBench201API(str(self.path), verbose=False)

    @property
    def metrics(self) -> list[str]:
        return list(self.columns)

    def _figures(self, index: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for metric, spec in self.columns.items():
            dataset, key = spec.split(":", 1)
            info = self.api.get_more_info(index, dataset, hp="200", is_random=False)
            out[metric] = float(info[key])
        return out

    def query(self, arch: Any) -> dict[str, float]:
        key = normalize_arch(arch)
        index = self.api.query_index_by_arch(key)
        if index is None or index < 0:
            raise StageError(f"nb201: architecture {key!r} is not in {self.path}")
        return self._figures(int(index))

    def best(self, metric: str) -> tuple[str, float]:
        self._check_metric(metric)
        scores = [(self._figures(i)[metric], i) for i in range(len(self.api))]
        value, index = max(scores)
        return str(self.api.arch(index)), value


def open_nb201(cfg: Any) -> Benchmark:
    """A CSV table, or the official API for ``.pth``/``.pickle.pbz2`` files and NATS folders."""
    path = str(cfg_get(cfg, "path", ""))
    if not path:
        raise ConfigError("benchmark.path is required for benchmark=nb201: pass benchmark.path=<table.csv>")
    columns = dict(cfg_get(cfg, "columns", {}) or {})
    if path.endswith(".csv"):
        return NB201Table(path, str(cfg_get(cfg, "arch_column", "arch")), columns)
    check_trust(cfg)

    log.warning(f"nb201: loading {path} through pickle (benchmark.trust_pickle=true): it can run code; "
                "only use files from a source you trust")
    return NB201Api(path, columns)


def check_trust(cfg: Any) -> None:
    """The official files are pickles, which can run code on load: they need ``benchmark.trust_pickle=true``."""
    path = str(cfg_get(cfg, "path", ""))
    if path and not path.endswith(".csv") and not bool(cfg_get(cfg, "trust_pickle", False)):
        raise ConfigError(f"benchmark.path={path}: official NAS-Bench-201 files are pickles, which can run code "
                          "on load; pass benchmark.trust_pickle=true if you trust this file, or give a CSV table")
