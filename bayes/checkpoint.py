"""Atomic run checkpoints: write to a temporary file, then ``os.replace`` it.

A checkpoint holds everything needed to continue a run exactly: chain states
(kernel states and adaptation), the index of the next step, draws so far and
a fingerprint of the run's settings, model and data. A crash at any moment
leaves either the previous or the new checkpoint, never a torn file.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CheckpointError", "data_digest", "load_checkpoint", "save_checkpoint"]

_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or belongs to a different run."""


def data_digest(static: Any, data: Mapping[str, Any]) -> str:
    """SHA-256 of the model data (static values and array contents)."""
    h = hashlib.sha256(repr(static).encode())
    for name in sorted(data):
        arr = np.asarray(data[name])
        h.update(f"{name}:{arr.dtype}:{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        pickle.dump({"format": _FORMAT, **payload}, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(
    path: str | os.PathLike[str], fingerprint: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: Checkpoint file.
        fingerprint: The current run's fingerprint; it must equal the stored one.

    Returns:
        The payload, or ``None`` when ``path`` does not exist.

    Raises:
        CheckpointError: Unreadable file or a fingerprint that differs (naming
            the fields that differ).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        with open(path, "rb") as f:
            payload = pickle.load(f)
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a bayes checkpoint of this version")
    stored = payload.get("fingerprint", {})
    keys = set(stored) | set(fingerprint)
    differ = sorted(k for k in keys if stored.get(k) != fingerprint.get(k))
    if differ:
        raise CheckpointError(
            f"checkpoint {str(path)!r} belongs to a different run (differs in: "
            f"{', '.join(differ)}); delete it or pass another checkpoint path"
        )
    return payload
