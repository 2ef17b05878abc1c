"""Training data padded to a few fixed sizes, so new observations reuse compiled programs.

BO adds one observation per round; if the number of rows were part of every
array shape, each round would trace and compile the samplers and optimizers
again. Rows are padded up to the next size in a short geometric ladder
(16, 32, 64, ...) and a mask marks the real ones; every log-density and
marginal likelihood here weighs row ``i`` by ``mask[i]``, which makes the
padded problem exactly the unpadded one.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

__all__ = ["PaddedData", "bucket_size", "pad_data", "standardize"]


class PaddedData(NamedTuple):
    """Padded training data.

    Attributes:
        x: Inputs, shape ``(n_pad, d)``; padded rows are zeros.
        y: Standardized outputs, shape ``(n_pad, m)``; padded rows are zeros.
        mask: 1.0 for real rows, 0.0 for padding, shape ``(n_pad,)``.
    """

    x: np.ndarray | jax.Array
    y: np.ndarray | jax.Array
    mask: np.ndarray | jax.Array


def bucket_size(n: int, minimum: int = 16, factor: int = 2) -> int:
    """Smallest ``minimum * factor^k >= n`` (``k >= 0``): powers of two by default."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if factor < 2:
        raise ValueError(f"factor must be >= 2, got {factor}")
    size = max(int(minimum), 1)
    while size < n:
        size *= factor
    return size


def standardize(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y - mean) / std`` per column, with the mean and std (std 1 for constant columns).

    Args:
        y: Outputs, shape ``(n, m)``.

    Returns:
        ``(z, mean, std)`` with shapes ``(n, m)``, ``(m,)``, ``(m,)``.
    """
    y = np.asarray(y, dtype=np.float64)
    mean = y.mean(axis=0)
    std = y.std(axis=0)
    std = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)
    return (y - mean) / std, mean, std


def pad_data(x: np.ndarray, y: np.ndarray, minimum: int = 16) -> PaddedData:
    """Pad ``x`` of shape ``(n, d)`` and ``y`` of shape ``(n, m)`` to :func:`bucket_size` rows.

    Returns:
        The padded data, as :class:`PaddedData` of NumPy float64 arrays.

    Raises:
        ValueError: Mismatched or non-finite inputs.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"expected x (n, d) and y (n, m), got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("training data contain NaN or infinite values")
    n = x.shape[0]
    size = bucket_size(n, minimum)
    xp = np.zeros((size, x.shape[1]))
    yp = np.zeros((size, y.shape[1]))
    xp[:n], yp[:n] = x, y
    mask = (np.arange(size) < n).astype(np.float64)
    # NumPy float64: converted to JAX arrays where they are used, under the caller's x64 setting.
    return PaddedData(xp, yp, mask)
