"""`gmnas rank` on the smoke preset prints coefficients with sample sizes (paper 5.2, Table 7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.stages import rank, search, split, warmup

TABLE = Path(os.environ.get("GMNAS_BENCHMARKS", Path(__file__).resolve().parents[2] / "shared" / "benchmarks")) \
    / "nb201" / "nats_bench_test_acc.csv"


@pytest.mark.skipif(not TABLE.exists(), reason=f"benchmark table {TABLE} not present")
def test_rank_on_smoke(cfg_factory, capsys):
    cfg = cfg_factory("experiment=smoke", "space=nb201_4ops", "criterion=gm", "splits=1", "name=rk", "benchmark=nb201",
                      f"benchmark.path={TABLE}", "rank.samples=30", "rank.batches=1")
    for stage in (warmup, split, search):
        stage.main(cfg)
    out = rank.rank(cfg)
    printed = capsys.readouterr().out
    assert out["n"]["all"] == 30
    # Top sets are the top k% of the 4-op space's own 4096 architectures (paper Table 7).
    assert out["population"] == 4096
    assert [out["n"][f"top_{p}"] for p in ("0.2", "0.5", "1")] == [8, 20, 41]
    for name, n in out["n"].items():
        assert f"{name}: n={n} spearman=" in printed
        rho = out["spearman"][name]
        assert rho is None or -1.0 <= rho <= 1.0
    saved = json.loads((Path(cfg.out_dir) / "rk" / "ranking.json").read_text())
    assert saved["n"] == out["n"]


def test_every_architecture_has_exactly_one_owner(cfg_factory):
    import torch

    from gmnas_cli.pipeline.runtime import Runtime

    cfg = cfg_factory("experiment=smoke", "criterion=random", "name=own", "branching=[3,2]", "warmup_epochs=0")
    warmup.main(cfg)
    split.main(cfg)
    tree = PartitionTree.load(Path(cfg.out_dir) / "own" / "tree.json")
    space = Runtime(cfg).space
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        arch = space.sample_arch(tree[0].mask, gen)
        assert rank.owner(tree, arch) in tree.leaves()
