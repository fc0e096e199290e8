"""Atomic, verified file writes (DESIGN.md: write to a temporary file, then rename)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from gmnas_cli.errors import StageError

_MAGIC = b"GMNASCKPT1\n"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StageError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save ``state`` with a SHA-256 header; the previous good file is kept as ``<name>.prev``."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    path = Path(path)
    if path.exists():
        os.replace(path, path.with_name(path.name + ".prev"))
    atomic_write_bytes(path, _MAGIC + digest + b"\n" + payload)


def _read_verified(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    if not raw.startswith(_MAGIC) or len(raw) < len(_MAGIC) + 65:
        raise StageError(f"checkpoint {path} is truncated or not a gmnas checkpoint")
    digest = raw[len(_MAGIC) : len(_MAGIC) + 64]
    payload = raw[len(_MAGIC) + 65 :]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise StageError(f"checkpoint {path} is corrupted (checksum mismatch)")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)


def load_checkpoint(path: str | os.PathLike, fallback: bool = True) -> dict[str, Any]:
    """Load a verified checkpoint; on corruption fall back to ``<name>.prev`` (with a warning)."""
    path = Path(path)
    try:
        return _read_verified(path)
    except (StageError, FileNotFoundError) as err:
        prev = path.with_name(path.name + ".prev")
        if fallback and prev.exists():
            from gmnas_cli.logging import log

            log.warning(f"{path}: {err}; falling back to the previous good checkpoint {prev}")
            return _read_verified(prev)
        raise
