"""The built-in ``algo=`` plugins: importing this module registers each of them (the registry
imports it at its first lookup, ``infra/registry.py``). A new plugin adds its module here."""

from gmnas_cli.algorithms import darts, gdas, ofa, proxyless, rsps, snas  # noqa: F401  (each registers itself)
