"""Which benchmark figure a run uses: the searched data set's, and its test counterpart.

``benchmark.metric`` names a figure such as ``cifar10_test`` or ``cifar10_valid``. A search on
CIFAR-100 or ImageNet16-120 must be selected and ranked by that data set's figure of the same
split (``cifar100_test``), never by CIFAR-10's; reported test columns
always show the test figure even when the valid figure drives selection (e.g.
``benchmark=nb201_v11``). Figures not named ``<dataset>_<split>`` (the NB301 surrogate's
``val_acc``) are used as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gmnas_cli.infra.errors import ConfigError

_SPLIT = re.compile(r"^(?P<ds>.+?)_(?P<split>valid|test)$")
# Data sets that NAS-Bench-201 tables report; any other data set (e.g. `digits`, a tiny stand-in for
# tests) has no figures of its own, and the configured metric is used verbatim.
BENCHMARK_DATASETS = ("cifar10", "cifar100", "imagenet16")


def dataset_metric(metric: str, dataset: str, available: Iterable[str]) -> str:
    """``metric`` moved to the searched ``dataset``: ``cifar10_test`` on cifar100 -> ``cifar100_test``.

    Raises a one-line ``ConfigError`` when the benchmark lacks the searched data set's figure.
    """
    available = list(available)
    if not metric:
        raise ConfigError(f"benchmark.metric is empty; pass one of: {', '.join(available)}")
    m = _SPLIT.match(metric)
    if m is None or dataset not in BENCHMARK_DATASETS:
        if metric not in available:
            raise ConfigError(f"benchmark.metric={metric!r} is not a figure of the benchmark; "
                              f"available: {', '.join(available)}")
        return metric
    own = f"{dataset}_{m['split']}"
    if own not in available:
        raise ConfigError(f"benchmark.metric={metric!r}: the benchmark has no {own!r} figure for "
                          f"dataset={dataset}; available: {', '.join(available)}")
    return own


def matching_test_figure(metric: str, available: Iterable[str]) -> str | None:
    """The test figure of ``metric``'s data set (``cifar10_valid`` -> ``cifar10_test``), else ``None``.

    A metric without a split in its name (``val_acc``) has no test counterpart and returns ``None``.
    """
    available = list(available)
    m = _SPLIT.match(metric or "")
    if m is None:
        return None
    test = f"{m['ds']}_test"
    return test if test in available else None


def dataset_metrics(metric: str, dataset: str, available: Iterable[str]) -> tuple[str, str | None]:
    """(selection metric, test metric) of a run; see ``dataset_metric`` and ``matching_test_figure``."""
    available = list(available)
    sel = dataset_metric(metric, dataset, available)
    return sel, matching_test_figure(sel, available)


__all__ = ["BENCHMARK_DATASETS", "dataset_metric", "dataset_metrics", "matching_test_figure"]
