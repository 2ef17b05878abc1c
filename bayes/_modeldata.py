"""Model data: constants versus traced arrays, and checks against the model's signature.

Used through :mod:`bayes.target`, which re-exports the public names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

__all__ = ["DataError", "check_data", "split_data"]


class DataError(ValueError):
    """The data do not fit the model: unknown or missing keys, NaN or infinite values."""


def _is_static(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    return isinstance(value, np.integer | np.bool_) or (
        isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iub"
    )


def split_data(data: Mapping[str, Any] | None) -> tuple[tuple[tuple[str, Any], ...], dict]:
    """Split model data into static constants and traced arrays.

    Integers, booleans, strings and ``None`` are static: models use them as
    sizes (``range(K)``, plate sizes), which must be known at trace time.
    Everything else (arrays, lists, floats) becomes a JAX array traced as an
    argument, so new values of the same shape reuse the compiled program.

    Args:
        data: Keyword arguments of the model.

    Returns:
        ``(static, dynamic)``: a sorted tuple of ``(name, value)`` pairs and a
            dict of JAX arrays.
    """
    static, dynamic = [], {}
    for name, value in (data or {}).items():
        if _is_static(value):
            static.append((name, value.item() if hasattr(value, "item") else value))
        else:
            dynamic[name] = jnp.asarray(np.asarray(value) if isinstance(value, list) else value)
    return tuple(sorted(static)), dynamic


def check_data(model: Callable, data: Mapping[str, Any] | None) -> None:
    """Check data against the model's signature and for non-finite values.

    Args:
        model: A NumPyro model function called as ``model(**data)``.
        data: Its keyword arguments.

    Raises:
        DataError: A key the model does not take, an argument without default
            that is missing, or a NaN or infinite value.
    """
    data = dict(data or {})
    try:
        params = inspect.signature(model).parameters
    except (TypeError, ValueError):  # builtins or C callables: nothing to check
        params = None
    if params is not None:
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        named = {
            n: p
            for n, p in params.items()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        }
        unknown = sorted(set(data) - set(named))
        if unknown and not takes_any:
            raise DataError(
                f"the model takes no argument {', '.join(map(repr, unknown))} "
                f"(it takes: {', '.join(named) or 'nothing'})"
            )
        missing = [n for n, p in named.items() if p.default is p.empty and n not in data]
        if missing:
            raise DataError(f"data lacks {', '.join(map(repr, missing))}, needed by the model")
    for name, value in data.items():
        if value is None or isinstance(value, str):
            continue
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise DataError(f"data {name!r} is not numeric") from None
        if not np.all(np.isfinite(arr)):
            bad = "NaN" if np.isnan(arr).any() else "infinite"
            raise DataError(f"data {name!r} contains {bad} values")
