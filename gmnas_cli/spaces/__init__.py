"""Search spaces keyed by ``space=`` option names."""

from gmnas_cli.spaces.base import SPACES, Arch, Mask, NaturalInput, SearchSpace, Supernet, build_space

__all__ = ["SPACES", "Arch", "Mask", "NaturalInput", "SearchSpace", "Supernet", "build_space"]
