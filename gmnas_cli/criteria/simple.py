"""Criteria without gradient scores: Few-Shot exhaustive, random balanced groups, One-Shot."""

from __future__ import annotations

import torch

from gmnas_cli.criteria.base import CRITERIA, Criterion, SplitContext, SplitDecision
from gmnas_cli.infra.seeding import generator


def _plain_scores(ctx: SplitContext, edge: str) -> dict:
    return {edge: {"ops": ctx.ops_of(edge), "distance": None, "cut_cost": None}}


def _edge(crit: Criterion, ctx: SplitContext) -> str:
    edge = crit.fixed_edge(ctx)
    assert edge is not None  # cut_cost is refused at construction for these criteria
    return edge


@CRITERIA.register("exhaustive")
class Exhaustive(Criterion):
    """Few-Shot NAS (Zhao et al. 2021): one child per enabled op of a random (or given) edge."""

    name = "exhaustive"
    label = "Exhaustive"
    method_prefix = "Few Shot"
    uses_branching = False  # one child per op

    def decide(self, ctx: SplitContext) -> SplitDecision:
        edge = _edge(self, ctx)
        return SplitDecision(edge, [[op] for op in ctx.ops_of(edge)], _plain_scores(ctx, edge))


@CRITERIA.register("random")
class RandomPartition(Criterion):
    """Random balanced groups (paper Table 1 baseline), reproducible from the seed."""

    name = "random"
    label = "Random"
    method_prefix = "Random"

    def decide(self, ctx: SplitContext) -> SplitDecision:
        edge = _edge(self, ctx)
        ops = ctx.ops_of(edge)
        gen = generator(ctx.seed, "random-groups", ctx.leaf.id, ctx.split_index)
        perm = torch.randperm(len(ops), generator=gen).tolist()
        groups = [sorted(perm[i] for i in range(k, len(ops), ctx.branching)) for k in range(ctx.branching)]
        groups.sort()
        return SplitDecision(edge, [[ops[i] for i in g] for g in groups], _plain_scores(ctx, edge))


@CRITERIA.register("none")
class OneShot(Criterion):
    """One-Shot NAS: never splits (``splits`` is treated as 0)."""

    name = "none"
    label = "None (one-shot)"
    splits = False

    def __init__(self, cfg) -> None:  # edge selection is irrelevant
        self.cfg = cfg

    def decide(self, ctx: SplitContext) -> SplitDecision:
        raise RuntimeError("criterion=none never splits")
