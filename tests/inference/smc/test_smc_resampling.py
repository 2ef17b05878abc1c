"""Resampling schemes: unbiased counts and the size-biased conditional law."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bayes.inference.smc import resampling

SCHEMES = ["multinomial", "stratified", "systematic", "residual"]
WEIGHTS = np.array([0.05, 0.3, 0.02, 0.23, 0.15, 0.25])
N = 7
REPS = 4000


def _counts(ancestors: jax.Array, m: int) -> jax.Array:
    return jax.vmap(lambda a: jnp.bincount(a, length=m))(ancestors)


@pytest.mark.parametrize("name", SCHEMES)
def test_counts_unbiased_and_conditional_law(name: str, rng_key) -> None:
    scheme, conditional = resampling.get_scheme(name)
    w = jnp.asarray(WEIGHTS, dtype=jnp.float32)
    m = w.shape[0]
    k1, k2 = jax.random.split(rng_key)
    keys = jax.random.split(k1, REPS)
    anc = jax.vmap(lambda k: scheme(k, w, N))(keys)
    counts = np.asarray(_counts(anc, m), dtype=float)
    # E[#copies of i] = N w_i
    z = (counts.mean(0) - N * WEIGHTS) / (counts.std(0) / np.sqrt(REPS) + 1e-12)
    assert np.all(np.abs(z) < 4.0), z

    kept = 3
    cond = jax.vmap(lambda k: conditional(k, w, N, kept))(jax.random.split(k2, REPS))
    assert np.all(np.asarray(cond[:, 0]) == kept)
    ccounts = np.asarray(_counts(cond, m), dtype=float)
    # The conditional law is the scheme's law size-biased by the copies of `kept`.
    target_terms = counts * counts[:, [kept]] / (N * WEIGHTS[kept])
    diff_se = np.sqrt(target_terms.var(0) / REPS + ccounts.var(0) / REPS) + 1e-12
    z = (ccounts.mean(0) - target_terms.mean(0)) / diff_se
    assert np.all(np.abs(z) < 4.0), (name, z)
    assert np.all(ccounts.sum(1) == N)


def test_ess_and_normalise() -> None:
    logw = jnp.log(jnp.asarray(WEIGHTS)) + 3.0
    w, log_mean = resampling.log_normalise(logw)
    np.testing.assert_allclose(np.asarray(w), WEIGHTS, rtol=1e-5)
    np.testing.assert_allclose(float(log_mean), 3.0 - np.log(6), rtol=1e-5)
    np.testing.assert_allclose(float(resampling.ess(logw)), 1 / np.sum(WEIGHTS**2), rtol=1e-5)


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unknown resampling scheme 'bogus'"):
        resampling.get_scheme("bogus")
