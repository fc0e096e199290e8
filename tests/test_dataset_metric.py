"""The searched data set's benchmark figure drives `select=max` and `gmnas rank` (fidelity review
items 8-10); top-k% sets are taken of the searched space's own population (paper Table 7)."""

from __future__ import annotations

import pytest

from gmnas_cli.benchmarks.metrics import dataset_metric, dataset_metrics, matching_test_figure
from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.io import read_json, write_json
from gmnas_cli.pipeline.runtime import Runtime
from tests.conftest import SHARED

NATS = SHARED / "nb201" / "nats_bench_test_acc.csv"
NATS_METRICS = ["cifar10_test", "cifar100_test", "imagenet16_test"]
V11_METRICS = ["cifar10_valid", "cifar10_test", "cifar10_valid_ori_test", "params_m"]
# NATS rows 6111 and 9930: the CIFAR-10 optimum and the CIFAR-100 optimum (they differ on edge 3<-2).
BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
BEST_C100 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
needs_nats = pytest.mark.skipif(not NATS.exists(), reason=f"benchmark table {NATS} not present")


def test_metric_follows_the_searched_data_set():
    assert dataset_metric("cifar10_test", "cifar100", NATS_METRICS) == "cifar100_test"
    assert dataset_metric("cifar10_test", "imagenet16", NATS_METRICS) == "imagenet16_test"
    assert dataset_metric("cifar10_test", "cifar10", NATS_METRICS) == "cifar10_test"
    assert dataset_metric("cifar10_test", "digits", NATS_METRICS) == "cifar10_test"  # stand-in data set
    assert dataset_metric("val_acc", "cifar10", ["val_acc"]) == "val_acc"  # NB301 surrogate
    with pytest.raises(ConfigError, match="no 'cifar100_valid' figure for dataset=cifar100"):
        dataset_metric("cifar10_valid", "cifar100", V11_METRICS)
    # nb201_v11: the valid figure selects, the test figure is reported
    assert dataset_metrics("cifar10_valid", "cifar10", V11_METRICS) == ("cifar10_valid", "cifar10_test")
    assert matching_test_figure("val_acc", ["val_acc"]) is None


def _fake_search(cfg, archs: list[str]) -> Runtime:
    """An experiment with one leaf per architecture (tree + search results), as `gmnas search` leaves it."""
    rt = Runtime(cfg)
    space = rt.space
    tree = PartitionTree.with_root(space.full_mask())
    root = tree[0]
    groups = [["none", "skip_connect", "nor_conv_1x1"], ["nor_conv_3x3", "avg_pool_3x3"]]  # BEST_C10 | BEST_C100
    root.split = {"edge": "3<-2", "groups": groups, "children": []}
    from gmnas_cli.experiment.tree import Node

    for i, arch in enumerate(archs, start=1):
        tree.nodes.append(Node(id=i, parent=0, depth=1, mask={**root.mask, "3<-2": groups[i - 1]}))
        root.split["children"].append(i)
        write_json(rt.exp.search_dir(i) / "result.json",
                   {"leaf": i, "arch": arch, "val_loss": 1.0, "val_acc": 0.5, "alpha": None})
    rt.exp.root.mkdir(parents=True, exist_ok=True)
    tree.save(rt.exp.tree_path)
    return rt


@needs_nats
@pytest.mark.parametrize("dataset, expected", [("cifar10", BEST_C10), ("cifar100", BEST_C100)])
def test_select_max_uses_the_searched_data_sets_column(cfg_factory, dataset, expected):
    from gmnas_cli.stages.select import select

    cfg = cfg_factory("space=nb201", f"dataset={dataset}", "dataset.root=/nonexistent", "benchmark=nb201",
                      f"benchmark.path={NATS}", "select.criterion=max", f"name=max-{dataset}")
    assert cfg.benchmark.metric == "cifar10_test"  # the preset's metric names CIFAR-10 ...
    rt = _fake_search(cfg, [BEST_C10, BEST_C100])
    select(rt)
    sel = read_json(rt.exp.selection_path)
    assert sel["arch"] == expected  # ... but a CIFAR-100 search is selected by the CIFAR-100 column
    assert sel["evidence"]["metric"] == f"{dataset}_test"


@needs_nats
def test_top_percent_of_the_4op_space_population():
    from gmnas_cli.benchmarks.nb201 import NB201Table
    from gmnas_cli.config.schema import SpaceConfig
    from gmnas_cli.spaces import build_space
    from gmnas_cli.stages.rank import space_population, top_percent

    table = NB201Table(NATS, "ArchitectureString", {"cifar10_test": "CIFAR10TestAccuracy200Epochs"})
    space = build_space(SpaceConfig(name="nb201", ops=["skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                                       "avg_pool_3x3"], C=4, N=1), 10, 3)
    pop = space_population(space, space.full_mask(), table.ranked("cifar10_test"))
    assert len(pop) == 4 ** 6
    assert [len(top_percent(pop, p)) for p in (0.2, 0.5, 1.0)] == [8, 20, 41]  # paper Table 7's sets
    assert all("none" not in a for a in pop) and pop[0] == BEST_C10


V11 = SHARED / "nb201" / "nb201_cifar10_valid_test.csv"


@pytest.mark.skipif(not V11.exists(), reason=f"benchmark table {V11} not present")
def test_nb201_v11_retrain_result_holds_the_test_figure(cfg_factory):
    """benchmark=nb201_v11: `metric: cifar10_valid` selects, but the test fields are test."""
    from gmnas_cli.benchmarks import load_benchmark
    from gmnas_cli.stages.retrain import benchmark_result

    cfg = cfg_factory("space=nb201", "benchmark=nb201_v11", f"benchmark.path={V11}")
    assert cfg.benchmark.metric == "cifar10_valid"
    figs = load_benchmark(cfg.benchmark).query(BEST_C10)
    res = benchmark_result(cfg, BEST_C10)
    assert res["test_metric"] == "cifar10_test" and figs["cifar10_valid"] != figs["cifar10_test"]
    assert res["test_acc"] == pytest.approx(figs["cifar10_test"] / 100.0)
    assert res["test_error"] == pytest.approx(100.0 - figs["cifar10_test"], abs=1e-4)


def test_rank_estimates_on_the_whole_held_out_half_by_default(cfg_factory):
    from gmnas_cli.stages.rank import held_out_batches

    cfg = cfg_factory("experiment=smoke")
    assert cfg.rank.batches == 0
    rt = Runtime(cfg)
    assert sum(len(y) for _, y in held_out_batches(rt)()) == len(rt.halves[1])
    capped = Runtime(cfg_factory("experiment=smoke", "rank.batches=2", "name=capped"))
    assert sum(len(y) for _, y in held_out_batches(capped)()) == 2 * int(cfg.train.batch_size)
