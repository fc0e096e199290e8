"""``threads=0``: the CPUs this process may use (affinity mask, cgroup quota, torch's default)."""

from __future__ import annotations

import torch

import gmnas_cli.infra.threads as threads


def test_threads_zero_respects_affinity_quota_and_torch_default(monkeypatch):
    monkeypatch.setattr(threads, "_DEFAULT", 8)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
    assert threads.usable_cpus() == 4  # taskset / SLURM cpuset
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: 1.5)
    assert threads.usable_cpus() == 2  # docker --cpus=1.5
    monkeypatch.setattr(threads, "_DEFAULT", 1)
    assert threads.usable_cpus() == 1  # never more than torch's own choice (physical cores)


def test_apply_threads_sets_torch(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "usable_cpus", lambda: 1)
    try:
        assert threads.apply_threads(0) == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
        assert threads.apply_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_more_threads_than_cpus_are_capped_with_a_warning(monkeypatch, caplog):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    try:
        assert threads.apply_threads(1000) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert "threads=1000 exceeds the 2 CPU(s) this process may use; using threads=2" in caplog.text
