"""The ``gmnas`` console script (``app.py``) and its ``--help`` (``help.py``)."""

from gmnas_cli.cli.app import COMMANDS, conf_dir, main, run_command

__all__ = ["COMMANDS", "conf_dir", "main", "run_command"]
