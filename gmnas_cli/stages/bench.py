"""``gmnas bench``: supernet search-step throughput, GM scoring time and peak memory.

Measures the configured space/algo at ``bench.batch_size`` and ``bench.image_size`` on the
configured device (see ``gmnas_cli/bench/suite.py`` for exactly what is timed), prints a table, writes
``bench.out`` (CSV) and, with ``bench.reference=xautodl``, ends with ``throughput_ratio=<x>``. ``bench.suite=smoke``
instead times every stage of ``experiment=smoke`` per space and algorithm (``bench/smoke.py``).
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from gmnas_cli.bench.smoke import SMOKE_STAGES, smoke_rows
from gmnas_cli.bench.suite import Row, bench_out, run_bench, write_csv
from gmnas_cli.infra.logging import log
from gmnas_cli.pipeline.runtime import resolve_device


def main(cfg: DictConfig) -> None:
    if str(cfg.bench.suite) == "smoke":
        return smoke(cfg)
    device = resolve_device(cfg.device, cfg.deterministic)
    if device.type == "cpu" and int(cfg.bench.threads) > 0:
        torch.set_num_threads(int(cfg.bench.threads))
    rows, ratio = run_bench(cfg, device)
    table = Table(title="gmnas bench")
    for col in ("metric", "impl", "value", "unit", "detail"):
        table.add_column(col, justify="right" if col == "value" else "left", overflow="fold")
    for r in rows:
        table.add_row(r.metric, r.impl, f"{r.value:.4g}", r.unit, r.detail)
    out = Console()
    out.print(table)
    path = write_csv(rows, bench_out(cfg))
    log.info(f"bench: wrote {path}")
    for r in rows:  # before throughput_ratio, which stays the last line
        if r.metric in ("threads_ratio", "gm_split_ratio"):
            print(f"{r.metric}={r.value:.2f}", flush=True)
    if ratio is not None:
        print(f"throughput_ratio={ratio:.2f}", flush=True)


def smoke(cfg: DictConfig) -> None:
    """``bench.suite=smoke``: one row per space and algorithm, one column per stage (wall seconds)."""
    rows = smoke_rows(cfg)
    table = Table(title="gmnas bench bench.suite=smoke: seconds per stage (wall; CPU in bench.csv)")
    table.add_column("space/algo")
    for stage in SMOKE_STAGES:
        table.add_column(stage, justify="right")
    table.add_column("slowest", justify="right")
    by: dict[str, dict[str, Row]] = {}
    for r in rows:
        by.setdefault(r.impl, {})[r.detail.split(";")[0]] = r
    for impl, stages in by.items():
        table.add_row(impl, *[f"{stages[s].value:.1f}" for s in SMOKE_STAGES],
                      f"{max(r.value for r in stages.values()):.1f}")
    Console().print(table)
    path = write_csv(rows, bench_out(cfg))
    log.info(f"bench: wrote {path}")
    print(f"smoke_slowest_stage={max(r.value for r in rows):.1f}", flush=True)
