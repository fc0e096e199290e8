"""Config schemas, registration and validation."""

from gmnas_cli.config.schema import Config, register_configs

__all__ = ["Config", "register_configs"]
