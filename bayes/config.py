"""Process-wide JAX configuration: persistent compilation cache and precision.

Functions here import JAX lazily; calling them before any computation is
what makes them effective.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "enable_compilation_cache", "enable_x64"]

_ENV_CACHE = "BAYES_CACHE_DIR"
_ENV_DISABLE = "BAYES_NO_COMPILATION_CACHE"


def cache_dir() -> Path:
    """Folder of the persistent JAX compilation cache.

    ``$BAYES_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/bayes/jax`` (by
    default ``~/.cache/bayes/jax``).

    Returns:
        The cache folder (not necessarily existing yet).
    """
    override = os.environ.get(_ENV_CACHE)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bayes" / "jax"


def enable_compilation_cache(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache so new processes skip compiling.

    Every compiled program is cached, however short its compile time, since
    the point is a fast second run of the same CLI command or test. Setting
    ``$BAYES_NO_COMPILATION_CACHE=1`` turns this into a no-op.

    Args:
        path: Cache folder; defaults to :func:`cache_dir`.

    Returns:
        The folder in use, or ``None`` when disabled or not writable.
    """
    if os.environ.get(_ENV_DISABLE):
        return None
    folder = Path(path) if path is not None else cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return folder


def enable_x64(enabled: bool = True) -> None:
    """Switch JAX to 64-bit floats and integers (needed by the float64 models).

    Args:
        enabled: ``True`` for float64 by default, ``False`` for float32.
    """
    import jax

    jax.config.update("jax_enable_x64", enabled)
