"""Resampling helpers (the laws of the schemes are tested in test_smc_conditional_law)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from bayes.inference.smc import resampling

WEIGHTS = np.array([0.05, 0.3, 0.02, 0.23, 0.15, 0.25])


def test_ess_and_normalise() -> None:
    logw = jnp.log(jnp.asarray(WEIGHTS)) + 3.0
    w, log_mean = resampling.log_normalise(logw)
    np.testing.assert_allclose(np.asarray(w), WEIGHTS, rtol=1e-5)
    np.testing.assert_allclose(float(log_mean), 3.0 - np.log(6), rtol=1e-5)
    np.testing.assert_allclose(float(resampling.ess(logw)), 1 / np.sum(WEIGHTS**2), rtol=1e-5)


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unknown resampling scheme 'bogus'"):
        resampling.get_scheme("bogus")


def _numpy_inverse_cdf(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(w) / w.sum()
    return np.minimum(np.searchsorted(cdf, u, side="right"), w.size - 1)


@pytest.mark.parametrize("name", ["multinomial", "stratified", "systematic", "residual"])
def test_from_uniforms_inverts_the_schemes_cdf(name: str) -> None:
    # Ancestors from given uniforms against the textbook inverse-CDF construction of
    # each scheme (a time loop draws a step's uniforms ahead and passes them in).
    n = 7
    u = np.random.default_rng(0).random(n)
    got = np.asarray(resampling.from_uniforms(name, jnp.asarray(u), jnp.asarray(WEIGHTS)))
    if name == "multinomial":
        want = _numpy_inverse_cdf(u, WEIGHTS)
    elif name == "stratified":
        want = _numpy_inverse_cdf((np.arange(n) + u) / n, WEIGHTS)
    elif name == "systematic":
        want = _numpy_inverse_cdf((np.arange(n) + u[0]) / n, WEIGHTS)
    else:
        counts = np.floor(n * WEIGHTS).astype(int)
        rest = n * WEIGHTS - counts
        extra = _numpy_inverse_cdf(u, rest)
        want = np.concatenate([np.repeat(np.arange(WEIGHTS.size), counts), extra])[:n]
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="unknown resampling scheme"):
        resampling.from_uniforms("bogus", jnp.asarray(u), jnp.asarray(WEIGHTS))
