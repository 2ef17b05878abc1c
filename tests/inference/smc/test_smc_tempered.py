"""Tempered SMC through bayes.sample on a conjugate model with a known evidence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats


def test_tempered_smc_matches_conjugate_posterior_and_evidence() -> None:
    from bayes.models.conjugate import exact_posterior, model, simulate

    import bayes

    y = simulate(20, seed=3)
    mean, sd = exact_posterior(y)
    exact_logz = stats.multivariate_normal(np.zeros(20), np.eye(20) + 100.0).logpdf(y)
    idata = bayes.sample(
        model,
        {"y": y},
        method="smc",
        num_chains=4,
        num_samples=400,
        num_particles=400,
        kernel="rw",
        num_mcmc_steps=5,
        progress=False,
        seed=1,
    )
    draws = np.asarray(idata.posterior["mu"])
    assert draws.shape == (4, 400)
    # Resampled SMC draws are correlated: use the spread of the four independent
    # runs' means as the Monte Carlo error (floor: an i.i.d. sample's error).
    chain_means = draws.mean(1)
    se = max(chain_means.std(ddof=1) / 2, sd / np.sqrt(draws.size))
    assert abs(chain_means.mean() - mean) < 5 * se, (chain_means, mean)
    assert abs(draws.std() / sd - 1) < 0.15
    per_chain = np.asarray(json.loads(idata.posterior.attrs["log_evidence_per_chain"]))
    se = max(per_chain.std(ddof=1) / 2, 0.02)
    assert abs(idata.posterior.attrs["log_evidence"] - exact_logz) < 5 * se
    assert "log_likelihood" in idata.groups()


def test_tempered_smc_bad_options() -> None:
    from bayes.models.conjugate import model

    import bayes

    y = np.zeros(3)
    with pytest.raises(ValueError, match="unknown option"):
        bayes.sample(model, {"y": y}, method="smc", bogus=1, progress=False)
    with pytest.raises(ValueError, match="num_samples \\(10\\) cannot exceed"):
        bayes.sample(model, {"y": y}, method="smc", num_samples=10, num_particles=5)
