"""Splitting criteria: (supernet, leaf, data) -> an edge and op groups (docs/method-facts.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import ListConfig

from gmnas_cli.config.schema import CriterionConfig
from gmnas_cli.experiment.tree import Node, PartitionTree
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.registry import Registry
from gmnas_cli.infra.seeding import generator
from gmnas_cli.spaces import SearchSpace
from gmnas_cli.training.trainer import SupernetTrainer


@dataclass
class SplitDecision:
    edge: str
    groups: list[list[str]]  # one per child, in child order
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)  # edge -> {ops, distance, cut_cost}


@dataclass
class SplitContext:
    """What a criterion may use for one leaf: its trained supernet and where to keep progress."""

    trainer: SupernetTrainer
    space: SearchSpace
    tree: PartitionTree
    leaf: Node
    branching: int
    split_index: int
    seed: int
    progress_path: Path | None = None

    def candidate_edges(self) -> list[str]:
        done = set(self.tree.split_edges(self.leaf))
        return [e for e in self.space.splittable_edges() if e not in done]

    def ops_of(self, edge: str) -> list[str]:
        return self.space.splittable_ops(self.leaf.mask, edge)

    def shared_parameters(self, edge: str) -> list[torch.nn.Parameter]:
        """The trainable shared weights whose gradients GM compares for ``edge`` (the space decides)."""
        return [p for p in self.space.shared_parameters(self.trainer.net, edge) if p.requires_grad]


class Criterion:
    """Base: edge choice by ``criterion.edge_selection`` and op groups by ``decide``.

    The pipeline asks a criterion only through the attributes and methods declared here (docs/design.md,
    "The plugin contract"); each says when it is asked and what the default is.
    """

    name = "base"
    scores_edges = False  # True: can rank edges by cut cost (``criterion.edge_selection=cut_cost``)
    # Whether it splits at all: False (One-Shot) makes every run's effective ``splits`` 0
    # (``config/derived.py`` effective_splits, read wherever a schedule or the tree depth is derived).
    splits = True
    # Whether ``branching`` sets its number of children per split (validated: 2 <= b <= ops of an edge);
    # False: the criterion decides (Few-Shot: one child per op).
    uses_branching = True
    label = ""  # ``gmnas report``: the "Split Criterion" column, e.g. "Gradient (GM)"; "": the name
    method_prefix = ""  # ``gmnas report``: the prefix of its method rows ("GM" + DARTS); "": the base algorithm alone

    @classmethod
    def check_config(cls, cfg: Any, branching: list[int], n_ops: int) -> None:
        """Criterion-specific checks of the composed config, called by ``pipeline/validate.py`` at start-up
        with the branching factor of each split and the fewest splittable ops of an edge. Default: none."""

    def __init__(self, cfg: CriterionConfig) -> None:
        self.cfg = cfg
        sel = cfg.edge_selection
        if not isinstance(sel, (list, ListConfig)) and sel == "cut_cost" and not self.scores_edges:
            raise ConfigError(f"criterion.edge_selection=cut_cost needs scores; criterion {cfg.name} has "
                              f"none (use criterion.edge_selection=random or a list of edges)")

    def fixed_edge(self, ctx: SplitContext) -> str | None:
        """The edge given by a list or chosen at random (Few-Shot's rule); None: rank by cut cost."""
        sel = self.cfg.edge_selection
        cands = ctx.candidate_edges()
        if isinstance(sel, (list, ListConfig)):
            edge = str(sel[ctx.split_index])
            if edge not in cands:
                raise ConfigError(f"criterion.edge_selection[{ctx.split_index}]={edge!r} is already split "
                                  f"in node {ctx.leaf.id}")
            return edge
        if sel == "random":
            # One permutation of the splittable edges per seed (official edge_crit=random-perm, the
            # Few-Shot rule): every branch splits the same edge at the same depth.
            edges = ctx.space.splittable_edges()
            order = torch.randperm(len(edges), generator=generator(ctx.seed, "edge-perm")).tolist()
            return next(edges[i] for i in order if edges[i] in cands)
        if sel == "random_per_node":  # official edge_crit=random-fully: a fresh draw per node
            gen = generator(ctx.seed, "edge", ctx.leaf.id, ctx.split_index)
            return cands[int(torch.randint(len(cands), (1,), generator=gen))]
        return None

    def decide(self, ctx: SplitContext) -> SplitDecision:
        raise NotImplementedError


CRITERIA: Registry[type[Criterion]] = Registry("criterion", catalog="gmnas_cli.criteria.catalog")
