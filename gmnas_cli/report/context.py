"""Benchmark figures of selected architectures: from ``selection.json`` or looked up in ``cfg.benchmark``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gmnas_cli.benchmarks import Benchmark
from gmnas_cli.errors import StageError
from gmnas_cli.report.collect import ExperimentRecord, finite, retrain_accuracy


@dataclass
class ReportContext:
    """The report's benchmark (or ``None``) and the metric it reports (``benchmark.metric``)."""

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

    def metric_for(self, rec: ExperimentRecord, figs: dict[str, float]) -> str | None:
        """The reported metric: the report's ``benchmark.metric``, the experiment's, or the first figure."""
        ds = str(rec.get("dataset.name", ""))
        for m in (self.metric, rec.get("benchmark.metric")):
            if m and m in figs:
                # the same split of the searched data set, if the benchmark has it (cifar10_test -> cifar100_test)
                own = re.sub(r"^.+?_(valid|test)$", rf"{ds}_\1", m) if ds else m
                return own if own in figs else m
        return next((k for k in figs if not k.startswith("params")), None)

    def accuracy(self, rec: ExperimentRecord) -> float | None:
        """Final accuracy (%) of an experiment: its benchmark metric, else its retrained test accuracy."""
        figs = self.figures(rec)
        metric = self.metric_for(rec, figs)
        if metric is not None:
            return figs[metric]
        return retrain_accuracy(rec)

    def test_error(self, rec: ExperimentRecord) -> float | None:
        """Test error (%): the retrained network's, else ``100 -`` the benchmark metric."""
        acc = retrain_accuracy(rec)
        if acc is None:
            acc = self.accuracy(rec)
        return None if acc is None else 100.0 - acc
