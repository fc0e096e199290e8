"""``gmnas retrain``: train the selected architecture from scratch, or look it up in a benchmark.

On a space whose benchmark tables hold trained figures (``SearchSpace.retrain_by_benchmark``: NAS-Bench-201)
with ``benchmark=`` set, the lookup replaces training
(docs/method-facts.md). Otherwise the space's evaluation network is trained on the full training set (both
halves) under ``cfg.retrain`` (DARTS protocol: paper Appendix D.2), checkpointed to
``retrain/ckpt.pt`` after every epoch (an interrupted run resumes there), and evaluated once on the
test split. Writes ``retrain/result.json``: arch, params_m, test_acc (0..1), test_error (%),
epochs, seconds, benchmark.
"""

from __future__ import annotations

import time
from typing import Any

from omegaconf import DictConfig

from gmnas_cli.benchmarks import benchmark_enabled, load_benchmark
from gmnas_cli.benchmarks.metrics import dataset_metric, matching_test_figure
from gmnas_cli.experiment.state import read_retrain_result, read_selection
from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.infra.io import write_json
from gmnas_cli.infra.logging import log
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.pipeline.stage import run_stage
from gmnas_cli.training.retrain import retrain_from_scratch


def benchmark_result(cfg: DictConfig, arch_str: str) -> dict[str, Any]:
    """The benchmark's metrics for ``arch_str``; test accuracy from ``benchmark.metric`` (in %)."""

    start = time.time()
    bench = load_benchmark(cfg.benchmark)
    if bench is None:
        raise ConfigError("retrain: benchmark.name is set but no benchmark was opened")
    if bench.spaces and str(cfg.space.name) not in bench.spaces:
        raise ConfigError(f"retrain: benchmark={cfg.benchmark.name} covers space={', '.join(bench.spaces)}, "
                          f"not space={cfg.space.name}")

    values = {k: None if v is None else float(v) for k, v in bench.query(arch_str).items()}  # None: no figure
    metric = str(cfg.benchmark.metric or "")
    if metric and metric not in values:
        raise StageError(f"retrain: benchmark.metric={metric!r} is not among the benchmark's metrics "
                         f"({', '.join(values)})")
    # Test fields hold the searched data set's test figure, even where the valid figure drives
    # selection (nb201_v11: cifar10_valid -> cifar10_test).
    if metric:
        metric = dataset_metric(metric, str(cfg.dataset.name), values)
        # a valid-only table has no test figure: the test fields stay empty rather than show valid
        metric = matching_test_figure(metric, values) or ("" if metric.endswith("_valid") else metric)
    acc = values[metric] if metric else None
    return {"params_m": None, "test_acc": None if acc is None else acc / 100.0,
            "test_error": None if acc is None else round(100.0 - acc, 4), "epochs": 0,
            "seconds": round(time.time() - start, 3), "benchmark": values, "test_metric": metric or None}


def retrain(rt: Runtime) -> dict:
    cfg, exp = rt.cfg, rt.exp
    out = exp.retrain_dir
    result_path = out / "result.json"
    if result_path.exists():  # finished before an interruption of the bookkeeping
        result = read_retrain_result(result_path)
        return {"test_error": result.get("test_error")}
    leaves = [n.id for n in PartitionTree.load(exp.tree_path).leaves()] if exp.tree_path.exists() else None
    selection = read_selection(exp.selection_path, leaves, rt.space.str_to_arch)
    arch_str = str(selection["arch"])
    if rt.space.retrain_by_benchmark and benchmark_enabled(cfg.benchmark):
        result = benchmark_result(cfg, arch_str)
        log.info(f"retrain: benchmark lookup of {arch_str}: {result['benchmark']}")
    else:
        try:
            arch = rt.space.str_to_arch(arch_str)
        except ValueError as err:
            raise StageError(f"retrain: {exp.selection_path}: {err}") from None
        out.mkdir(parents=True, exist_ok=True)
        for name, obj in rt.space.arch_files(arch).items():  # e.g. ProxylessNAS's net.config
            write_json(out / name, obj)
        try:
            result = {**retrain_from_scratch(rt, arch, out), "benchmark": None}
        except NotImplementedError as err:
            raise ConfigError(f"retrain: {err}") from None
        log.info(f"retrain: {arch_str}: {result['params_m']:.3f}M parameters, test error "
                 f"{result['test_error']:.2f}% after {result['epochs']} epochs")
    result = {"arch": arch_str, "leaf": selection.get("leaf"), **result}
    write_json(result_path, result)
    return {"test_error": result["test_error"]}


def main(cfg: DictConfig) -> None:
    rt = run_stage(cfg, "retrain", retrain, requires=["select"])
    path = rt.exp.retrain_dir / "result.json"
    if path.exists():
        res = read_retrain_result(path)
        err = res.get("test_error")
        print(f"retrain: {res['arch']}: test error {err if err is None else f'{err:.2f}%'}")
