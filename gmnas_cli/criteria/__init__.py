"""Splitting criteria keyed by ``criterion=`` option names: gm, exhaustive, random, none."""

from gmnas_cli.criteria.base import CRITERIA, Criterion, SplitContext, SplitDecision

__all__ = ["CRITERIA", "Criterion", "SplitContext", "SplitDecision"]
