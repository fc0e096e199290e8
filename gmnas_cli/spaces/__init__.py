"""Search spaces keyed by ``space=`` option names."""

from gmnas_cli.spaces.base import SPACES, Arch, Mask, SearchSpace, Supernet, build_space

__all__ = ["SPACES", "Arch", "Mask", "SearchSpace", "Supernet", "build_space"]
