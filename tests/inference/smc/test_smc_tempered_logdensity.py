"""Tempered SMC through bayes.sample on a plain JAX log-density (conjugate regression)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

PRIOR_SD, NOISE_SD, NUM_OBS = 2.0, 0.5, 15


def _problem():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(NUM_OBS, 2))
    y = X @ np.array([1.0, -0.7]) + NOISE_SD * rng.normal(size=NUM_OBS)
    cov = np.linalg.inv(X.T @ X / NOISE_SD**2 + np.eye(2) / PRIOR_SD**2)
    mean = cov @ X.T @ y / NOISE_SD**2
    evidence = stats.multivariate_normal(
        np.zeros(NUM_OBS), PRIOR_SD**2 * X @ X.T + NOISE_SD**2 * np.eye(NUM_OBS)
    ).logpdf(y)
    return X, y, mean, cov, evidence


def prior_logdensity(position):
    return jnp.sum(jax.scipy.stats.norm.logpdf(position["beta"], 0.0, PRIOR_SD))


def prior_sample(rng_key):
    return {"beta": PRIOR_SD * jax.random.normal(rng_key, (2,))}


def logdensity(position, X, y):
    beta = position["beta"]
    return prior_logdensity(position) + jnp.sum(jax.scipy.stats.norm.logpdf(y, X @ beta, NOISE_SD))


def test_tempered_smc_on_a_logdensity_matches_the_conjugate_posterior_and_evidence() -> None:
    import bayes

    X, y, mean, cov, evidence = _problem()
    idata = bayes.sample(
        logdensity,
        {"X": X, "y": y},
        method="smc",
        num_chains=4,
        num_samples=400,
        num_particles=400,
        kernel="rw",
        num_mcmc_steps=5,
        prior_logdensity_fn=prior_logdensity,
        prior_sample_fn=prior_sample,
        progress=False,
        seed=2,
    )
    draws = np.asarray(idata.posterior["beta"])
    assert draws.shape == (4, 400, 2)
    # Resampled draws are correlated: the spread of the 4 independent runs'
    # means is the Monte Carlo error (floor: an i.i.d. sample's error).
    chain_means = draws.mean(1)
    sd = np.sqrt(np.diag(cov))
    se = np.maximum(chain_means.std(0, ddof=1) / 2, sd / np.sqrt(draws.shape[0] * draws.shape[1]))
    assert np.all(np.abs(chain_means.mean(0) - mean) < 5 * se), (chain_means, mean)
    np.testing.assert_allclose(draws.reshape(-1, 2).std(0) / sd, 1.0, atol=0.15)
    per_chain = np.asarray(json.loads(idata.posterior.attrs["log_evidence_per_chain"]))
    se = max(per_chain.std(ddof=1) / 2, 0.02)
    assert abs(idata.posterior.attrs["log_evidence"] - evidence) < 5 * se, (per_chain, evidence)


def test_tempered_smc_logdensity_needs_the_prior() -> None:
    import bayes

    X, y, *_ = _problem()
    common = dict(method="smc", num_samples=10, num_particles=10, progress=False)
    with pytest.raises(ValueError, match="needs the options prior_logdensity_fn"):
        bayes.sample(logdensity, {"X": X, "y": y}, initial_position={"beta": np.zeros(2)}, **common)
    with pytest.raises(ValueError, match="needs the options prior_logdensity_fn"):
        bayes.sample(logdensity, {"X": X, "y": y}, prior_sample_fn=prior_sample, **common)
    with pytest.raises(ValueError, match="initial_positions is not used"):
        bayes.sample(
            logdensity, {"X": X, "y": y}, initial_positions={"beta": np.zeros((4, 2))}, **common
        )
    with pytest.raises(ValueError, match="shaped like initial_position"):
        bayes.sample(
            logdensity,
            {"X": X, "y": y},
            initial_position={"beta": np.zeros(3)},
            prior_logdensity_fn=prior_logdensity,
            prior_sample_fn=prior_sample,
            **common,
        )
