"""Benchmark figures of selected architectures: from ``selection.json`` or looked up in ``cfg.benchmark``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gmnas_cli.benchmarks import Benchmark
from gmnas_cli.benchmarks.metrics import dataset_metric, matching_test_figure
from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.report.collect import ExperimentRecord, finite, retrain_accuracy


@dataclass
class ReportContext:
    """The report's benchmark (or ``None``) and its ``benchmark.metric`` (``""``: each experiment's own)."""

    bench: Benchmark | None = None
    metric: str = ""
    _cache: dict[str, dict[str, float]] = field(default_factory=dict)

    def lookup(self, rec: ExperimentRecord, arch: Any) -> dict[str, float] | None:
        """Figures of ``arch`` from the report's benchmark, if it scores this experiment's space."""
        if self.bench is None or not isinstance(arch, (str, dict)) or not arch:
            return None
        space = rec.get("space.name")
        if space is not None and self.bench.spaces and space not in self.bench.spaces:
            return None
        key = arch if isinstance(arch, str) else repr(sorted(arch.items()))
        if key not in self._cache:
            try:
                self._cache[key] = self.bench.query(arch)
            except StageError as err:
                raise StageError(f"report: experiment {rec.name}: {err}") from None
        return self._cache[key]

    def figures(self, rec: ExperimentRecord) -> dict[str, float]:
        """Benchmark figures of the selected architecture (``{}`` when there are none)."""
        sel = rec.selection or {}
        figs = sel.get("benchmark")
        if not figs:
            figs = self.lookup(rec, sel.get("arch"))
        return {k: float(v) for k, v in (figs or {}).items() if finite(v)}

    def candidate_figures(self, rec: ExperimentRecord, cand: dict[str, Any]) -> dict[str, float]:
        figs = cand.get("benchmark") or self.lookup(rec, cand.get("arch"))
        return {k: float(v) for k, v in (figs or {}).items() if finite(v)}

    def _configured(self, rec: ExperimentRecord) -> str:
        return str(self.metric or rec.get("benchmark.metric") or "")

    def select_metric(self, rec: ExperimentRecord, figs: dict[str, float]) -> str | None:
        """The figure that drives selection: ``benchmark.metric`` (the report's, else the experiment's)
        moved to the searched data set (cifar10_test -> cifar100_test); without a
        configured metric, the first figure."""
        ds = str(rec.get("dataset.name", ""))
        m = self._configured(rec)
        if m:
            try:
                return dataset_metric(m, ds, figs)
            except ConfigError:
                return None
        return next((k for k in figs if not k.startswith("params")), None)

    def test_metric(self, rec: ExperimentRecord, figs: dict[str, float]) -> str | None:
        """The test figure reported in test columns: the selection metric's test counterpart
        (nb201_v11: cifar10_valid -> cifar10_test); a valid-only figure is never
        shown as test; a figure without a split (the NB301 surrogate's ``val_acc``) is kept."""
        sel = self.select_metric(rec, figs)
        if sel is None:
            return None
        test = matching_test_figure(sel, figs)
        if test is not None:
            return test
        return None if sel.endswith("_valid") else sel

    def source(self, rec: ExperimentRecord) -> str:
        """What ``accuracy`` reports for ``rec``: a benchmark figure's name or ``retrained test accuracy``."""
        figs = self.figures(rec)
        metric = self.test_metric(rec, figs)
        if metric is not None and (metric.endswith("_test") or retrain_accuracy(rec) is None):
            return metric
        if retrain_accuracy(rec) is not None:
            return "retrained test accuracy"
        return "supernet validation accuracy"

    def accuracy(self, rec: ExperimentRecord) -> float | None:
        """Test accuracy (%) of an experiment: its benchmark test figure, else its retrained test
        accuracy, else (NB301 surrogate) the benchmark's prediction."""
        figs = self.figures(rec)
        metric = self.test_metric(rec, figs)
        retrained = retrain_accuracy(rec)
        if metric is not None and (metric.endswith("_test") or retrained is None):
            return figs[metric]
        return retrained

    def test_error(self, rec: ExperimentRecord) -> float | None:
        """Test error (%): the retrained network's, else ``100 -`` the benchmark's test figure."""
        acc = retrain_accuracy(rec)
        if acc is None:
            acc = self.accuracy(rec)
        return None if acc is None else 100.0 - acc
