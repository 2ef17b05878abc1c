"""Particle filters against the Kalman filter of a linear Gaussian model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bayes.inference.smc import Proposal, run_filter
from bayes.models import ssm

THETA = ssm.scalar_theta(0.8, 0.0, -0.3)
T = 12
REPS = 1000


def _data():
    mats = ssm.scalar_matrices(THETA)
    _, ys = ssm.simulate(jax.random.key(11), mats, T)
    return mats, ys


def _wide_proposal(scale: float = 1.5) -> Proposal:
    """Dynamics with an inflated noise scale (a genuinely different proposal)."""
    sx = scale * jnp.exp(THETA["log_sigma_x"])
    sd0 = scale * jnp.sqrt(ssm.scalar_matrices(THETA)["P0"][0, 0])

    def norm_logpdf(x, mean, sd):
        return jnp.sum(jax.scipy.stats.norm.logpdf(x, mean, sd))

    return Proposal(
        lambda key, y0, th: sd0 * jax.random.normal(key, (1,)),
        lambda x, y0, th: norm_logpdf(x, 0.0, sd0),
        lambda key, xp, y, t, th: ssm.scalar_phi(th) * xp + sx * jax.random.normal(key, (1,)),
        lambda xp, x, y, t, th: norm_logpdf(x, ssm.scalar_phi(th) * xp, sx),
    )


@pytest.mark.parametrize(
    ("resampling", "ess_threshold", "guided"),
    [("systematic", 1.0, False), ("multinomial", 0.5, True)],
)
def test_likelihood_unbiased_and_filtering_means(resampling, ess_threshold, guided) -> None:
    mats, ys = _data()
    model = ssm.linear_gaussian_ssm(ssm.scalar_matrices)
    proposal = _wide_proposal() if guided else None
    exact = ssm.kalman_filter(mats, ys)

    @jax.jit
    def run(keys):
        return jax.vmap(
            lambda k: run_filter(
                model,
                THETA,
                ys,
                rng_key=k,
                num_particles=64,
                resampling=resampling,
                ess_threshold=ess_threshold,
                proposal=proposal,
            )
        )(keys)

    out = run(jax.random.split(jax.random.key(3), REPS))
    ratio = np.exp(np.asarray(out.log_likelihood, dtype=float) - float(exact.log_likelihood))
    z = (ratio.mean() - 1.0) / (ratio.std() / np.sqrt(REPS))
    assert abs(z) < 4.0, (ratio.mean(), z)
    means = np.asarray(out.filtering_mean[:, :, 0])
    # Self-normalised means carry an O(1/N) bias: allow it on top of the MC error.
    z = (means.mean(0) - np.asarray(exact.filtered_means[:, 0])) / (
        means.std(0) / np.sqrt(REPS) + 0.02
    )
    assert np.all(np.abs(z) < 4.0), z
    var = np.asarray(out.filtering_var[:, :, 0]).mean(0)
    np.testing.assert_allclose(var, np.asarray(exact.filtered_covs[:, 0, 0]), rtol=0.15)


def test_history_and_errors() -> None:
    _, ys = _data()
    model = ssm.linear_gaussian_ssm(ssm.scalar_matrices)
    out = run_filter(
        model, THETA, ys, rng_key=jax.random.key(0), num_particles=8, store_history=True
    )
    assert out.particles.shape == (T, 8, 1)
    assert out.log_weights.shape == (T, 8)
    assert out.ancestors.shape == (T, 8)
    np.testing.assert_allclose(np.asarray(jax.nn.logsumexp(out.log_weights, axis=1)), 0, atol=1e-5)
    with pytest.raises(ValueError, match="num_particles must be an integer >= 2"):
        run_filter(model, THETA, ys, rng_key=jax.random.key(0), num_particles=1)
    bad = ys.at[3, 0].set(jnp.nan)
    with pytest.raises(ValueError, match="non-finite values \\(first at time 3\\)"):
        run_filter(model, THETA, bad, rng_key=jax.random.key(0), num_particles=8)
    with pytest.raises(ValueError, match="leading time axis"):
        run_filter(model, THETA, jnp.array(1.0), rng_key=jax.random.key(0), num_particles=8)
    with pytest.raises(ValueError, match="unknown resampling scheme"):
        run_filter(model, THETA, ys, rng_key=jax.random.key(0), num_particles=8, resampling="x")
