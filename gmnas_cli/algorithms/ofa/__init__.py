"""algo=ofa: progressive shrinking and evolution per leaf (Cai et al. 2020)."""

from gmnas_cli.algorithms.ofa import algorithm  # noqa: F401  (registers algo=ofa)
