"""Conjugate Normal model: the smallest zoo entry, with an exact posterior.

Model (known noise scale ``sigma``)::

    mu  ~ Normal(prior_mean, prior_scale)
    y_i ~ Normal(mu, sigma),  i = 1..n

Posterior: ``mu | y ~ Normal(m_n, s_n)`` with precision
``1/s_n^2 = 1/prior_scale^2 + n/sigma^2`` and mean
``m_n = s_n^2 (prior_mean/prior_scale^2 + sum(y)/sigma^2)``.

It is the ground truth used to check samplers end to end.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["exact_posterior", "model", "simulate"]


def model(
    y: Any = None,
    *,
    sigma: float = 1.0,
    prior_mean: float = 0.0,
    prior_scale: float = 10.0,
    n: int | None = None,
) -> None:
    """NumPyro model of a Normal mean with known noise scale.

    Args:
        y: Observations, shape ``(n,)``; ``None`` to sample from the prior.
        sigma: Known noise standard deviation.
        prior_mean: Mean of the Normal prior on ``mu``.
        prior_scale: Standard deviation of the Normal prior on ``mu``.
        n: Number of observations when ``y`` is ``None``.
    """
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(prior_mean, prior_scale))
    size = n if y is None else np.shape(y)[0]
    with numpyro.plate("obs", size):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def exact_posterior(
    y: np.ndarray, *, sigma: float = 1.0, prior_mean: float = 0.0, prior_scale: float = 10.0
) -> tuple[float, float]:
    """Mean and standard deviation of ``mu | y``.

    Args:
        y: Observations, shape ``(n,)``.
        sigma: Known noise standard deviation.
        prior_mean: Prior mean of ``mu``.
        prior_scale: Prior standard deviation of ``mu``.

    Returns:
        ``(m_n, s_n)``: posterior mean and standard deviation.
    """
    y = np.asarray(y, dtype=float)
    precision = 1.0 / prior_scale**2 + y.size / sigma**2
    var = 1.0 / precision
    mean = var * (prior_mean / prior_scale**2 + y.sum() / sigma**2)
    return float(mean), float(np.sqrt(var))


def simulate(n: int, *, mu: float = 1.5, sigma: float = 1.0, seed: int = 0) -> np.ndarray:
    """Draw ``n`` observations ``y_i ~ Normal(mu, sigma)`` with NumPy."""
    return np.random.default_rng(seed).normal(mu, sigma, size=n)
