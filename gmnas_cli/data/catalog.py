"""The built-in ``dataset=`` plugins: importing this module registers each of them (the registry
imports it at its first lookup, ``infra/registry.py``). A new plugin adds its module here."""

from gmnas_cli.data import cifar, digits, imagenet, imagenet16, synthetic  # noqa: F401  (each registers itself)
