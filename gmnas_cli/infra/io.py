"""Atomic, verified file writes (docs/method-facts.md: write to a temporary file, then rename)."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from gmnas_cli.infra import ranks
from gmnas_cli.infra.errors import StageError
from gmnas_cli.infra.failpoints import kill_point
from gmnas_cli.infra.logging import log

_MAGIC = b"GMNASCKPT1\n"


def host_tag() -> str:
    """This host's name as it appears in temporary names (no dots: names are split at dots)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _temp_path(path: Path) -> str:
    """A fresh temporary name next to ``path``: ``.<name>.<host>.<pid>.<random>.tmp``; host and pid
    say whose it is (see ``remove_stale_temps``; a pid means nothing on another node)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{host_tag()}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a reader sees the old file or the new one, never half.

    On any error (disk full, permissions) the temporary file is removed and the OSError names ``path``.
    """
    with ranks.one_writer() as write:  # data parallel: rank 0 writes, the others wait
        if write:
            _atomic_write_bytes(Path(path), data)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_path(path)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        kill_point(f"temp:{path.name}")
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(path)
        raise
    kill_point(f"write:{path.name}")


def remove_stale_temps(root: str | os.PathLike) -> list[Path]:
    """Remove temporary files under ``root`` left by killed writers on this host (their pid is
    gone). Another host's files are never touched: its pids cannot be checked from here."""
    removed = []
    for p in Path(root).rglob(".*.tmp"):
        m = p.name.rsplit(".", 4)  # [".<name>", host, pid, random, "tmp"]
        pid = int(m[2]) if len(m) == 5 and m[2].isdigit() and m[1] == host_tag() else None
        if pid is None or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # a live writer (e.g. a parallel leaf job)
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def strict_json(obj: Any, where: str = "", **kwargs: Any) -> str:
    """``obj`` as strict JSON (RFC 8259: no NaN or Infinity); a non-finite number is a one-line
    StageError naming ``where`` and the key that holds it, never a file other tools cannot parse."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:
        key = _non_finite_key(obj) or "?"
        raise StageError(f"{where or 'JSON output'}: refusing to write a non-finite number at {key} "
                         "(a result that means nothing)") from None


def _non_finite_key(obj: Any, at: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return at or "the top level"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        found = _non_finite_key(v, f"{at}.{k}" if at else str(k))
        if found:
            return found
    return None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """The one JSON writer of the project: strict (``strict_json``), atomic."""
    atomic_write_text(path, strict_json(obj, str(path), indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, keys: tuple[str, ...] = ()) -> Any:
    """Parse a JSON file; with ``keys``, it must be an object holding them (else a one-line StageError)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(), parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f"{exc.msg}: line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc.reason
        raise StageError(f"{path}: not valid JSON ({where})") from None
    if keys:
        lacking = [k for k in keys if not isinstance(data, dict) or k not in data]
        if lacking:
            raise StageError(f"{path}: expected a JSON object with {', '.join(keys)}; {lacking[0]!r} is missing "
                             "(rerun the stage that wrote it with force=true)")
    return data


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not valid JSON (a non-finite number)", name, 0)


def prev_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".prev")


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """``path`` or its ``.prev`` exists: there is something to resume from."""
    return Path(path).exists() or prev_path(path).exists()


def checkpoint_ok(path: str | os.PathLike) -> bool:
    """``path`` or its ``.prev`` passes its checksum: ``load_checkpoint`` will succeed."""
    return _is_valid(Path(path)) or _is_valid(prev_path(path))


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save ``state`` with a SHA-256 header; the previous good file is kept as ``<name>.prev``.

    ``path`` itself never disappears: the old file is hard-linked (or copied) to ``.prev``, then the
    new one replaces it atomically, so a kill at any point leaves a loadable checkpoint. A corrupt
    old file is not rotated: ``.prev`` keeps the last good state.
    """
    ranks.check_ranks_agree(state, f"checkpoint {Path(path).name}")  # data parallel: one model
    with ranks.one_writer() as write:
        if write:
            _save_checkpoint(Path(path), state)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch  # lazy: the JSON and atomic-file helpers above serve `gmnas status` without torch

    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    if _is_valid(path):
        tmp = _temp_path(path)
        try:
            os.unlink(tmp)
            try:
                os.link(path, tmp)
            except OSError:  # no hard links on this file system
                shutil.copyfile(path, tmp)
            os.replace(tmp, prev_path(path))
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        kill_point(f"rotated:{path.name}")
    _atomic_write_bytes(path, _MAGIC + digest + b"\n" + payload)


def _is_valid(path: Path) -> bool:
    try:
        _check(path, path.read_bytes())
        return True
    except (OSError, StageError):
        return False


def _check(path: Path, raw: bytes) -> bytes:
    if not raw.startswith(_MAGIC) or len(raw) < len(_MAGIC) + 65:
        raise StageError(f"checkpoint {path} is truncated or not a gmnas checkpoint")
    digest = raw[len(_MAGIC) : len(_MAGIC) + 64]
    payload = raw[len(_MAGIC) + 65 :]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise StageError(f"checkpoint {path} is corrupted (checksum mismatch)")
    return payload


# Explicit allow-list of classes a checkpoint may hold beyond tensors, plain containers and numbers
# (``torch.serialization.safe_globals``). Empty: gmnas stores optimizer states and masks as such, RNG
# states as uint8 tensors (``torch.Generator.get_state()``), never numpy objects. Add a class only if it
# cannot run code when rebuilt.
SAFE_GLOBALS: list[Any] = []


class UnsafeCheckpoint(StageError):
    """A checkpoint whose payload needs more than tensors and plain containers (it could run code)."""


def _read_verified(path: Path) -> dict[str, Any]:
    import torch  # lazy, as in _save_checkpoint

    payload = _check(path, path.read_bytes())
    # weights_only: tensors, plain containers and numbers only; a pickled object whose __reduce__ would
    # run code is refused before anything runs (the SHA-256 header proves integrity, not origin).
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
        what = lines[0] if lines else type(exc).__name__
        raise UnsafeCheckpoint(f"checkpoint {path} holds more than tensors and plain containers, refused "
                               f"without running it ({what.rstrip('.')}); only load checkpoints gmnas wrote") from None


def load_checkpoint(path: str | os.PathLike, fallback: bool = True) -> dict[str, Any]:
    """Load a verified checkpoint; on corruption fall back to ``<name>.prev`` (with a warning)."""
    path = Path(path)
    try:
        return _read_verified(path)
    except UnsafeCheckpoint:
        raise  # tampering, not damage: never fall back silently
    except (StageError, FileNotFoundError) as err:
        prev = prev_path(path)
        if not fallback or not prev.exists():
            if isinstance(err, StageError) and fallback:
                raise StageError(f"{err}; no previous checkpoint {prev.name} to fall back to") from None
            raise

        log.warning(f"{err}; falling back to the previous checkpoint {prev}")
        try:
            return _read_verified(prev)
        except UnsafeCheckpoint:
            raise
        except StageError as prev_err:
            raise StageError(f"{err}, and {prev_err}") from None
