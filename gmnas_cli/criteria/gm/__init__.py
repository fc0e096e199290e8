"""criterion=gm: gradient-matching edge scores and balanced cuts (paper 3.2-3.3)."""

from gmnas_cli.criteria.gm import criterion  # noqa: F401  (registers criterion=gm)
