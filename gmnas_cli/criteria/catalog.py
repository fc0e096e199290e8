"""The built-in ``criterion=`` plugins: importing this module registers each of them (the registry
imports it at its first lookup, ``infra/registry.py``). A new plugin adds its module here."""

from gmnas_cli.criteria import gm, simple  # noqa: F401  (each registers itself)
