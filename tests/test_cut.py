"""The balanced cut is the optimum of plain enumeration (paper Eqn. 3, generalised to any B)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gmnas_cli.criteria.cut import balanced_min_cut, ncut, set_partitions


def brute_force(sim: np.ndarray, b: int) -> float:
    """Plain enumeration over every labelling of the ops with b labels and balanced sizes."""
    n = len(sim)
    best = float("inf")
    for labels in itertools.product(range(b), repeat=n):
        sizes = [labels.count(k) for k in range(b)]
        if min(sizes) == 0 or max(sizes) - min(sizes) > 1:
            continue
        cost = sum(sim[i, j] for i in range(n) for j in range(i + 1, n) if labels[i] != labels[j])
        best = min(best, cost)
    return best


def random_sym(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.uniform(-1, 1, (n, n))
    a = (a + a.T) / 2
    np.fill_diagonal(a, 1.0)
    return a


@pytest.mark.parametrize("b", [2, 3, 4])
@pytest.mark.parametrize("n", [4, 5, 6, 7, 8])
def test_cut_equals_enumerated_optimum(n, b):
    rng = np.random.default_rng(1000 * n + b)
    for _ in range(3 if n < 8 else 1):
        sim = random_sym(rng, n)
        groups, cost = balanced_min_cut(sim, b)
        assert cost == pytest.approx(brute_force(sim, b), abs=1e-9)
        sizes = sorted(len(g) for g in groups)
        assert len(groups) == b and sizes[-1] - sizes[0] <= 1
        assert sorted(i for g in groups for i in g) == list(range(n))


def test_partitions_are_listed_once():
    parts = list(set_partitions(6, 3, balanced=True))
    assert len(parts) == 15  # 6! / (2!^3 3!)
    assert len({tuple(map(tuple, p)) for p in parts}) == 15
    assert len(list(set_partitions(5, 2, balanced=False))) == 15  # Stirling S(5, 2)


def test_obvious_clusters_are_found():
    # ops {0,1} and {2,3,4} agree internally and disagree across: the cut separates them.
    sim = np.full((5, 5), -0.5)
    sim[np.ix_([0, 1], [0, 1])] = 0.9
    sim[np.ix_([2, 3, 4], [2, 3, 4])] = 0.9
    groups, cost = balanced_min_cut(sim, 2)
    assert sorted(map(sorted, groups)) == [[0, 1], [2, 3, 4]]
    assert cost == pytest.approx(-3.0)
    assert sorted(map(sorted, ncut(sim, 2)[0])) == [[0, 1], [2, 3, 4]]


def test_branching_equal_to_ops_is_one_op_per_group():
    groups, _ = balanced_min_cut(random_sym(np.random.default_rng(0), 4), 4)
    assert sorted(map(len, groups)) == [1, 1, 1, 1]
