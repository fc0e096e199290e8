"""What every trainer shares: verified checkpoints of its state and its per-epoch curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gmnas_cli.infra.io import atomic_write_text, load_checkpoint, save_checkpoint


def format_curve(history: list[dict[str, Any]]) -> str:
    """Per-epoch records as CSV text (floats with 6 significant digits)."""
    cols = list(history[0])
    rows = [",".join(f"{h[c]:.6g}" if isinstance(h[c], float) else str(h[c]) for c in cols) for h in history]
    return "\n".join([",".join(cols), *rows]) + "\n"


class Checkpointed:
    """Mixin: ``save``/``load`` through checksummed checkpoints, ``write_curve`` from ``history``."""

    history: list[dict[str, Any]]

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, path: Path) -> None:
        save_checkpoint(path, self.state_dict())

    def load(self, path: Path) -> None:
        self.load_state_dict(load_checkpoint(path))

    def write_curve(self, path: Path) -> None:
        if self.history:
            atomic_write_text(path, format_curve(self.history))
