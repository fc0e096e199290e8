"""The built-in ``space=`` plugins: importing this module registers each of them (the registry
imports it at its first lookup, ``infra/registry.py``). A new plugin adds its module here."""

from gmnas_cli.spaces import darts, mobilenet, nb201, ofa  # noqa: F401  (each registers itself)
