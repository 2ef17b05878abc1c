"""NUTS over the NNGP hyperparameters and the readout scale (``bayes.models.nngp.hmc``)."""

from __future__ import annotations

import arviz as az
import jax
import numpy as np
import pytest
from bayes.models.nngp import gp_fit, kernel_matrix
from bayes.models.nngp.data import load_regression, split
from bayes.models.nngp.hmc import hmc_predict, sample_hyperparameters
from bayes.models.nngp.regression import fit_hyperparameters, init_params, predict
from scipy import stats


def test_sampled_scale_matches_the_inverse_gamma_posterior():
    """Kernel fixed: the posterior of s is InverseGamma(a + n/2, b + Q/2) exactly.

    NUTS's mean and 5/50/95% quantiles of s must lie within 4 Monte Carlo standard
    errors (ArviZ, from the effective sample size) of the closed form.
    """
    rng = np.random.default_rng(0)
    n, a, b = 20, 2.0, 1.0
    x = rng.standard_normal((n, 3))
    y = np.sin(x[:, 0]) + 0.3 * rng.standard_normal(n)
    kw = dict(weight_variance=2.0, bias_variance=0.1, depth=1)
    fixed = dict(
        log_weight_variance=np.log(2.0), log_bias_variance=np.log(0.1),
        log_noise_variance=np.log(0.1),
    )  # fmt: skip
    idata = sample_hyperparameters(
        x, y, depth=1, scale="sampled", fixed=fixed, concentration=a, rate=b,
        num_chains=4, num_warmup=500, num_samples=1000, seed=1,
    )  # fmt: skip
    assert list(idata.posterior.data_vars) == ["log_scale"]
    with jax.enable_x64(True):
        quad = float(gp_fit(kernel_matrix(x, **kw), y, noise_variance=0.1).quad)
    truth = stats.invgamma(a + n / 2, scale=b + quad / 2)
    s = az.InferenceData(posterior=np.exp(idata.posterior["log_scale"]).to_dataset(name="s"))
    mcse = float(az.mcse(s)["s"])
    assert abs(float(s.posterior["s"].mean()) - truth.mean()) < 4 * mcse
    for q in (0.05, 0.5, 0.95):
        err = float(az.mcse(s, method="quantile", prob=q)["s"])
        got = float(s.posterior["s"].quantile(q))
        assert abs(got - truth.ppf(q)) < 4 * err, (q, got, truth.ppf(q), err)


@pytest.mark.slow
def test_hmc_predictive_is_no_worse_than_type_ii_maximum_likelihood():
    """20 training points of the Gaussian synthetic set, 3 splits, 50 test points each.

    Paired per-point log predictive densities, NUTS (s integrated) minus the type-II ML
    inverse-gamma fit: the mean must not be below -0.05 nats (the stated tolerance) by
    more than 2 standard errors. A run over 5 splits gave +0.17 +- 0.04 (HMC better).
    """
    x, y = load_regression("synthetic-gaussian")
    diffs = []
    for seed in range(3):
        s = split(x, y, seed=seed, max_train=20, max_eval=100)
        with jax.enable_x64(True):
            init = init_params("inverse_gamma", weight_variance=2.0, bias_variance=0.1)
            params, _ = fit_hyperparameters(
                s.x_train, s.y_train, family="inverse_gamma", depth=2, num_steps=100, init=init
            )
            ml = predict(
                params, s.x_train, s.y_train, s.x_test, s.y_test, family="inverse_gamma", depth=2
            )
        idata = sample_hyperparameters(
            s.x_train, s.y_train, depth=2, num_warmup=300, num_samples=300, seed=seed
        )
        assert int(idata.sample_stats["diverging"].sum()) == 0
        pred = hmc_predict(idata, s.x_train, s.y_train, s.x_test, s.y_test, depth=2)
        assert pred.draw_log_density.shape == (1200, len(s.y_test))
        diffs.append(np.asarray(pred.log_density) - np.asarray(ml.log_density))
    d = np.concatenate(diffs)
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert d.mean() > -0.05 - 2 * se, (d.mean(), se)


def test_bad_inputs_raise_clear_errors():
    x, y = np.ones((4, 2)), np.ones(4)
    with pytest.raises(ValueError, match="scale must be"):
        sample_hyperparameters(x, y, scale="fixed")
    with pytest.raises(ValueError, match="fixed takes"):
        sample_hyperparameters(x, y, fixed={"log_scale": 0.0})
    with pytest.raises(ValueError, match="rate must be positive"):
        sample_hyperparameters(x, y, rate=-1.0)
    with pytest.raises(ValueError, match="NaN"):
        sample_hyperparameters(x, np.array([1.0, np.nan, 0.0, 1.0]))
    everything = dict(log_weight_variance=0.0, log_bias_variance=0.0, log_noise_variance=0.0)
    with pytest.raises(ValueError, match="nothing to sample"):
        sample_hyperparameters(x, y, fixed=everything)
