"""The balanced cut is the optimum of plain enumeration (paper Eqn. 3, generalised to any B)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from omegaconf import OmegaConf

from gmnas_cli.criteria.cut import balanced_min_cut, ncut, set_partitions
from gmnas_cli.criteria.gm.scoring import cross_pairs, decision_state, edge_cost, score_from_distance


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


def _clustered(n: int, groups: list[list[int]], inside: float, across: float) -> np.ndarray:
    """A GM distance matrix: distance ``inside`` within a cluster, ``across`` between clusters."""
    label = np.empty(n, dtype=int)
    for k, g in enumerate(groups):
        label[g] = k
    d = np.where(label[:, None] == label[None, :], inside, across).astype(float)
    np.fill_diagonal(d, 0.0)
    return d


@pytest.mark.parametrize("b", [2, 3])
def test_a_six_op_and_a_seven_op_block_are_compared_on_equal_footing(b):
    """MobileNet: stage-first blocks have 6 ops, the others 7. With the same similarity structure
    (the same distances within and across clusters) neither is favoured by its op count; slightly
    less similar clusters on the 7-op block win, although its raw cut sums more cross pairs."""
    six = [list(range(6))[i::b] for i in range(b)]
    seven = [list(range(7))[i::b] for i in range(b)]
    cfg = OmegaConf.create({"similarity": "cosine", "cut": "balanced"})
    for across7, winner in ((0.8, None), (0.79, "b6"), (0.81, "b7")):
        scores = {"b6": score_from_distance(_clustered(6, six, 0.1, 0.8), [f"o{i}" for i in range(6)], cfg, b),
                  "b7": score_from_distance(_clustered(7, seven, 0.1, across7), [f"o{i}" for i in range(7)], cfg, b)}
        assert [sorted(len(g) for g in scores[e]["groups"]) for e in ("b6", "b7")] == \
            [[6 // b] * b, sorted(len(g) for g in seven)]  # the clusters are found
        assert edge_cost(scores["b6"], "balanced") == pytest.approx(1 - 0.8)  # mean cut similarity
        if winner is None:  # the same structure: the same cost, whatever the op count
            assert edge_cost(scores["b7"], "balanced") == pytest.approx(edge_cost(scores["b6"], "balanced"))
        else:
            assert decision_state(scores, ["b6", "b7"], "balanced")[0][0] == winner
        assert scores["b7"]["cut_cost"] > scores["b6"]["cut_cost"]  # the raw sum always favoured the 6-op block
    assert cross_pairs([3, 3]) == 9 and cross_pairs([3, 4]) == 12 and cross_pairs([2, 2, 2]) == 12 \
        and cross_pairs([2, 2, 3]) == 16


def test_edges_of_equal_op_count_keep_the_raw_cut_order():
    """NB201 (5 ops) and DARTS (7 ops): every edge has the same op count, so the order of edges and
    the groups are those of the raw cut cost (ties in edge order), on random GM matrices."""
    rng = np.random.default_rng(0)
    cfg = OmegaConf.create({"similarity": "cosine", "cut": "balanced"})
    for n, b, edges in ((5, 2, 6), (7, 2, 14), (7, 3, 14), (4, 2, 6)):
        for _ in range(50):
            scores = {}
            for e in range(edges):
                d = rng.uniform(0, 1.2, (n, n))
                scores[f"e{e}"] = score_from_distance((d + d.T) / 2, [f"o{i}" for i in range(n)], cfg, b)
            names = list(scores)
            if rng.random() < 0.3:  # exact ties too
                scores[names[3]] = dict(scores[names[1]])
            raw = sorted(names, key=lambda e: (scores[e]["cut_cost"], names.index(e)))
            assert list(decision_state(scores, names, "balanced")[0]) == raw
