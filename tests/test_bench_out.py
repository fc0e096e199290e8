"""``gmnas bench`` writes under ``out_dir`` by default, whatever the working directory."""

from __future__ import annotations

from pathlib import Path

from gmnas_cli.bench.suite import bench_out

from .conftest import make_cfg


def test_bench_out_defaults_under_out_dir(tmp_path: Path) -> None:
    assert bench_out(make_cfg(tmp_path / "x")) == tmp_path / "x" / "bench"
    assert bench_out(make_cfg(tmp_path / "x", f"bench.out={tmp_path}/b.csv")) == tmp_path / "b.csv"
