"""Graph cuts over an op-similarity graph (paper Eqn. 3 and Appendix B.3).

``balanced_min_cut`` enumerates every partition of the ops into ``B`` groups whose sizes differ
by at most one and minimises the summed similarity of the links it cuts (equivalently maximises
the cross-group distance); ``ncut`` minimises the normalised cut over all partitions into ``B``
non-empty groups; ``within_group_cut`` is the official DARTS-space rule (``mincut_split_darts`` in
GM-NAS ``train_search_ws.py``): groups of at least 2 ops, minimising the summed within-group
distance. Brute force is exact and cheap for the op counts of NAS spaces (<= 8 ops).

Balanced and within-group costs are linear in the similarity/distance matrix:
``partition_costs`` evaluates one matrix (or a stack of per-minibatch matrices) on every candidate
partition at once, which the GM confidence early stop needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np


def set_partitions(n: int, b: int, balanced: bool) -> Iterator[list[list[int]]]:
    """Partitions of ``range(n)`` into ``b`` non-empty unlabelled groups (each listed once).

    Groups are ordered by their smallest element. With ``balanced``, sizes are floor(n/b) or
    ceil(n/b).
    """
    if not 1 <= b <= n:
        return
    lo, hi = n // b, -(-n // b)
    n_big = n - lo * b  # groups of size hi when balanced

    def rec(i: int, groups: list[list[int]]) -> Iterator[list[list[int]]]:
        if i == n:
            if len(groups) == b and (not balanced or _sizes_ok(groups, lo, hi, n_big)):
                yield [list(g) for g in groups]
            return
        if n - i < b - len(groups):  # not enough elements left to open the remaining groups
            return
        for g in groups:
            if balanced and len(g) >= hi:
                continue
            g.append(i)
            yield from rec(i + 1, groups)
            g.pop()
        if len(groups) < b:
            groups.append([i])
            yield from rec(i + 1, groups)
            groups.pop()

    yield from rec(0, [])


def _sizes_ok(groups: list[list[int]], lo: int, hi: int, n_big: int) -> bool:
    sizes = [len(g) for g in groups]
    return all(lo <= s <= hi for s in sizes) and sum(s == hi for s in sizes) == (n_big if hi > lo else len(sizes))


def cut_value(sim: np.ndarray, groups: list[list[int]]) -> float:
    """Summed similarity of the links between different groups (each unordered pair once)."""
    label = np.empty(len(sim), dtype=int)
    for k, g in enumerate(groups):
        label[g] = k
    cross = label[:, None] != label[None, :]
    return float(np.triu(np.where(cross, sim, 0.0), 1).sum())


def balanced_min_cut(sim: np.ndarray, b: int) -> tuple[list[list[int]], float]:
    """The balanced partition minimising the cut (paper Eqn. 3, generalised to any B)."""
    sim = np.asarray(sim, dtype=float)
    best, best_cost = None, float("inf")
    for groups in set_partitions(len(sim), b, balanced=True):
        cost = cut_value(sim, groups)
        if cost < best_cost - 1e-12:
            best, best_cost = groups, cost
    if best is None:
        raise ValueError(f"cannot cut {len(sim)} ops into {b} balanced groups")
    return best, best_cost


def ncut(sim: np.ndarray, b: int) -> tuple[list[list[int]], float]:
    """Normalised cut (von Luxburg 2007) on affinities shifted to be non-negative (Appendix B.3).

    Returns the partition and its cut value in the original similarities (for edge ranking).
    """
    sim = np.asarray(sim, dtype=float)
    aff = sim - min(0.0, float(sim[~np.eye(len(sim), dtype=bool)].min(initial=0.0)))
    np.fill_diagonal(aff, 0.0)
    best, best_val = None, float("inf")
    for groups in set_partitions(len(sim), b, balanced=False):
        val = 0.0
        for g in groups:
            rest = [i for i in range(len(sim)) if i not in g]
            vol = aff[g].sum()
            val += aff[np.ix_(g, rest)].sum() / vol if vol > 0 else float("inf")
        if val < best_val - 1e-12:
            best, best_val = groups, val
    if best is None:
        raise ValueError(f"cannot cut {len(sim)} ops into {b} groups")
    return best, cut_value(sim, best)


def within_partitions(n: int, b: int) -> Iterator[list[list[int]]]:
    """Partitions into ``b`` groups of at least 2 ops each (official DARTS space, b=2: 2|5 or 3|4)."""
    for groups in set_partitions(n, b, balanced=False):
        if all(len(g) >= 2 for g in groups):
            yield groups


def within_group_cut(dist: np.ndarray, b: int) -> tuple[list[list[int]], float]:
    """The partition minimising the summed within-group distance, and that sum (official
    ``mincut_split_darts``; its edge with the smallest sum is split first)."""
    dist = np.asarray(dist, dtype=float)
    best, best_cost = None, float("inf")
    for groups in within_partitions(len(dist), b):
        cost = within_value(dist, groups)
        if cost < best_cost - 1e-12:
            best, best_cost = groups, cost
    if best is None:
        raise ValueError(f"cannot cut {len(dist)} ops into {b} groups of at least 2 ops")
    return best, best_cost


def within_value(dist: np.ndarray, groups: list[list[int]]) -> float:
    """Summed distance of the links inside groups (each unordered pair once)."""
    label = np.empty(len(dist), dtype=int)
    for k, g in enumerate(groups):
        label[g] = k
    same = label[:, None] == label[None, :]
    return float(np.triu(np.where(same, dist, 0.0), 1).sum())


@lru_cache(maxsize=64)
def candidate_partitions(rule: str, n: int, b: int) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Every partition a linear cut rule (``balanced`` | ``within``) chooses among, in enumeration order."""
    gen = set_partitions(n, b, balanced=True) if rule == "balanced" else within_partitions(n, b)
    return tuple(tuple(tuple(g) for g in groups) for groups in gen)


@lru_cache(maxsize=64)
def _pair_weights(rule: str, n: int, b: int) -> np.ndarray:
    """[K, n*n] 0/1 rows: the (i<j) pairs each partition's cost sums (cut links or within links)."""
    parts = candidate_partitions(rule, n, b)
    rows = np.zeros((len(parts), n * n))
    for k, groups in enumerate(parts):
        label = np.empty(n, dtype=int)
        for g_i, g in enumerate(groups):
            label[list(g)] = g_i
        pick = (label[:, None] != label[None, :]) if rule == "balanced" else (label[:, None] == label[None, :])
        rows[k] = np.triu(pick, 1).reshape(-1)
    return rows


def partition_costs(mat: np.ndarray, rule: str, b: int) -> np.ndarray:
    """Costs of every candidate partition: ``mat`` [n, n] -> [K], or a stack [B, n, n] -> [B, K].

    ``balanced``: ``mat`` is the similarity, cost = summed cut similarity (``cut_value``);
    ``within``: ``mat`` is the distance, cost = summed within-group distance (``within_value``).
    """
    mat = np.asarray(mat, dtype=float)
    n = mat.shape[-1]
    flat = mat.reshape(*mat.shape[:-2], n * n)
    return flat @ _pair_weights(rule, n, b).T
