"""Base weight-sharing algorithms keyed by ``algo=`` option names."""

from gmnas_cli.algorithms.base import ALGORITHMS, Algorithm, build_algorithm

__all__ = ["ALGORITHMS", "Algorithm", "build_algorithm"]
