"""Auxiliary particle filters against the Kalman filter of a linear Gaussian model."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from bayes.inference.smc import filters, run_filter
from bayes.models import ssm

THETA = ssm.scalar_theta(0.8, 0.0, -0.3)
T = 12
REPS = 1000
N = 32


def _data():
    mats = ssm.scalar_matrices(THETA)
    _, ys = ssm.simulate(jax.random.key(11), mats, T)
    return mats, ys


def _transition_mean(x_prev, t, theta):
    return ssm.scalar_phi(theta) * x_prev


def _run(ys, keys, **kwargs):
    model = ssm.linear_gaussian_ssm(ssm.scalar_matrices)
    return jax.jit(
        jax.vmap(lambda k: run_filter(model, THETA, ys, rng_key=k, num_particles=N, **kwargs))
    )(keys)


@pytest.mark.parametrize("variant", ["lookahead", "fully_adapted"])
def test_auxiliary_filter_unbiased_likelihood_and_filtering_means(variant) -> None:
    mats, ys = _data()
    model = ssm.linear_gaussian_ssm(ssm.scalar_matrices)
    if variant == "lookahead":
        # Bootstrap proposal, look-ahead at the transition mean, adaptive resampling.
        options = dict(
            auxiliary_logweight_fn=filters.lookahead_logweight(model, _transition_mean),
            resampling="multinomial",
            ess_threshold=0.5,
        )
    else:
        options = dict(
            auxiliary_logweight_fn=ssm.predictive_logweight(ssm.scalar_matrices),
            proposal=ssm.optimal_proposal(ssm.scalar_matrices),
        )
    exact = ssm.kalman_filter(mats, ys)
    out = _run(ys, jax.random.split(jax.random.key(3), REPS), **options)
    # Unbiased on the natural scale: the ratio to the exact likelihood has mean 1.
    ratio = np.exp(np.asarray(out.log_likelihood, dtype=float) - float(exact.log_likelihood))
    z = (ratio.mean() - 1.0) / (ratio.std() / np.sqrt(REPS))
    assert abs(z) < 4.0, (ratio.mean(), z)
    means = np.asarray(out.filtering_mean[:, :, 0], dtype=float)
    # Self-normalised means carry an O(1/N) bias: allow it on top of the MC error.
    z = (means.mean(0) - np.asarray(exact.filtered_means[:, 0])) / (
        means.std(0) / np.sqrt(REPS) + 0.02
    )
    assert np.all(np.abs(z) < 4.0), z


def test_auxiliary_steps_match_their_definition() -> None:
    """Without resampling a step weighs by V * w and adds log sum W e^eta; with the
    exact look-ahead and the optimal proposal every second-stage weight is one."""
    _, ys = _data()
    model = ssm.linear_gaussian_ssm(ssm.scalar_matrices)
    eta_fn = filters.lookahead_logweight(model, _transition_mean)
    adapted = dict(
        auxiliary_logweight_fn=ssm.predictive_logweight(ssm.scalar_matrices),
        proposal=ssm.optimal_proposal(ssm.scalar_matrices),
    )

    @jax.jit
    def steps(state):
        lookahead = filters.step(
            jax.random.key(2), state, model, THETA, ys[1], 1,
            ess_threshold=1e-6, auxiliary_logweight_fn=eta_fn,
        )  # fmt: skip
        full, _ = filters.step(jax.random.key(3), state, model, THETA, ys[1], 1, **adapted)
        eta = jax.vmap(lambda x: eta_fn(x, ys[1], 1, THETA))(state.particles)
        log_g = jax.vmap(lambda x: model.observation_logdensity(x, ys[1], 1, THETA))(
            lookahead[0].particles
        )
        return lookahead, full, eta, log_g

    state = filters.init(jax.random.key(1), model, THETA, ys[0], 6)
    (new, info), full, eta, log_g = steps(state)
    assert not bool(info.resampled)
    np.testing.assert_array_equal(np.asarray(info.ancestors), np.arange(6))
    # V^i w^i = W^i e^eta_i / sum(W e^eta) * g_i / e^eta_i  ->  proportional to W^i g_i.
    expected_w = jax.nn.softmax(state.log_weights + log_g)
    np.testing.assert_allclose(np.exp(np.asarray(new.log_weights)), expected_w, rtol=1e-4)
    expected_inc = jax.nn.logsumexp(state.log_weights + log_g)
    np.testing.assert_allclose(
        float(info.log_likelihood_increment), float(expected_inc), rtol=1e-5, atol=1e-5
    )
    assert np.ptp(np.asarray(eta)) > 0.1  # the look-ahead does reweigh
    np.testing.assert_allclose(np.asarray(full.log_weights), -np.log(6), atol=1e-5)
