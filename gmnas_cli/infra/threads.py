"""CPU threads for torch: ``threads=N`` uses N, ``threads=0`` the CPUs this process may use.

``threads=0`` takes the smallest of torch's default (the machine's physical cores), the CPUs in
the process's affinity mask (``taskset``, SLURM and container cpusets) and the cgroup CPU quota
(``docker --cpus``): torch's default ignores the last two, so a job given 2 of 64 cores would run
64 threads on them. On an otherwise idle 2-core machine two threads are 1.2x faster than one for
the paper-size step (``gmnas bench bench.threads_compare=[1,2]``, docs/performance.md); for tiny
models (the ``smoke`` and ``demo`` presets) one thread is as fast, so those presets set 1. Bitwise
CPU determinism holds for the same thread count (``threads=0`` may differ between machines).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from gmnas_cli.infra.logging import log

_DEFAULT = torch.get_num_threads()  # torch's own choice, before anything sets it


def _cgroup_quota() -> float | None:
    """CPUs allowed by the cgroup quota (v2 ``cpu.max``, v1 ``cfs_quota_us``), None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """What ``threads=0`` runs with (module docstring)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, min(n, _DEFAULT))


def apply_threads(threads: int) -> int:
    """Set torch's intra-op threads from the ``threads`` key; returns the count used. More threads
    than usable CPUs are capped with a warning: oversubscribed threads slow a CPU epoch many-fold
    (threads=1000 on 2 cores: about 370x), and a config moved to a smaller machine still runs."""
    usable = usable_cpus()
    n = int(threads) if int(threads) > 0 else usable
    if n > usable:
        log.warning(f"threads={n} exceeds the {usable} CPU(s) this process may use; using threads={usable}")
        n = usable
    torch.set_num_threads(n)
    return n
