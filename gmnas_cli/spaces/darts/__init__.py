"""The DARTS cell space (Liu et al. 2019; GM-NAS paper 4.2): search supernet, ops, grouped cell nodes, evaluation network."""

from gmnas_cli.spaces.darts import space  # noqa: F401  (registers space=darts)
