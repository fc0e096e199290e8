"""Search spaces keyed by ``space=`` option names."""

from gmnas_cli.spaces import darts, mobilenet, nb201, ofa_mbv3  # noqa: F401  (registers)
from gmnas_cli.spaces.base import SPACES, Arch, Mask, SearchSpace, Supernet, build_space

__all__ = ["SPACES", "Arch", "Mask", "SearchSpace", "Supernet", "build_space"]
