"""Gaussian / Student-t process regression, general scale priors and hyperparameter fitting."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from bayes.models import nngp
from scipy import stats

KW = dict(depth=2, activation="relu", weight_variance=1.5, bias_variance=0.1)


def _data(n=40, m=9, c=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + m, 3))
    f = np.sin(2 * x[:, :1]) + 0.5 * x[:, 1:2] * np.arange(1, c + 1)
    y = f + 0.2 * rng.standard_t(3, size=(n + m, c))
    return x[:n], y[:n], x[n:], y[n:]


def _fit(x, y, xt, noise=0.05):
    k = nngp.nngp_kernel(x, **KW)
    fit = nngp.gp_fit(k, y, noise_variance=noise, jitter=0.0)
    return fit, nngp.nngp_kernel(x, xt, **KW), nngp.kernel_diag(xt, **KW), k


def test_gaussian_prediction_matches_dense_algebra(x64):
    x, y, xt, yt = _data()
    fit, kc, kd, k = _fit(x, y, xt)
    mean, var = nngp.gaussian_predict(fit, kc, kd, scale=1.7)
    a = np.asarray(k) + 0.05 * np.eye(len(x))
    kc = np.asarray(kc)
    np.testing.assert_allclose(mean, kc.T @ np.linalg.solve(a, y), rtol=1e-8)
    ref_var = 1.7 * (np.asarray(kd) + 0.05 - np.einsum("ij,ij->j", kc, np.linalg.solve(a, kc)))
    np.testing.assert_allclose(var, ref_var, rtol=1e-8)
    lml = nngp.gaussian_log_marginal_likelihood(fit, scale=1.7)
    ref = stats.multivariate_normal(np.zeros(len(x)), 1.7 * a).logpdf(y[:, 0])
    np.testing.assert_allclose(lml, ref, rtol=1e-10)
    lpd = nngp.gaussian_log_predictive(yt, mean, var)
    np.testing.assert_allclose(lpd, stats.norm(mean[:, 0], np.sqrt(var)).logpdf(yt[:, 0]))


@pytest.mark.parametrize("c", [1, 3])
def test_student_t_closed_form_matches_quadrature_and_importance_sampling(x64, c):
    """IG mixture: closed form = quadrature (1e-8) = importance sampling (1e-4) in log density."""
    x, y, xt, yt = _data(c=c)
    fit, kc, kd, _ = _fit(x, y, xt)
    a, b = 2.5, 1.5
    pred = nngp.student_t_predict(fit, kc, kd, concentration=a, rate=b)
    exact = nngp.student_t_log_predictive(yt, pred)
    lml = nngp.student_t_log_marginal_likelihood(fit, concentration=a, rate=b)
    mean, unit_var = nngp.gaussian_predict(fit, kc, kd)
    prior = dist.InverseGamma(a, b)
    quad = nngp.scale_posterior_quadrature(fit, prior)
    np.testing.assert_allclose(
        nngp.mixture_log_predictive(yt, mean, unit_var, quad), exact, atol=1e-8
    )
    np.testing.assert_allclose(quad.log_evidence, lml, atol=1e-8)
    isp = nngp.scale_posterior_importance(fit, prior, rng_key=jax.random.key(1), num_samples=2**14)
    np.testing.assert_allclose(
        nngp.mixture_log_predictive(yt, mean, unit_var, isp), exact, atol=1e-4
    )
    np.testing.assert_allclose(isp.log_evidence, lml, atol=1e-4)
    np.testing.assert_allclose(
        isp.mean_scale, (b + fit.quad / 2) / (a + len(x) * c / 2 - 1), rtol=1e-4
    )
    assert isp.ess > 0.5 * 2**14
    # the predictive variance of the t (df > 2) equals E[s | Y] times the unit variance
    np.testing.assert_allclose(pred.variance, quad.mean_scale * unit_var, rtol=1e-7)
    # one output: scipy's Student t
    if c == 1:
        ref = stats.t(pred.df, pred.loc[:, 0], np.sqrt(pred.scale2)).logpdf(yt[:, 0])
        np.testing.assert_allclose(exact, ref, rtol=1e-10)


def test_student_t_tends_to_gaussian_for_concentrated_prior(x64):
    x, y, xt, yt = _data()
    fit, kc, kd, _ = _fit(x, y, xt)
    # a -> inf with b/a fixed: the t predictive tends to the Gaussian at the posterior
    # scale b_n/a_n (the gap is O(1/df)) and the marginal likelihood to the Gaussian one
    a = 1e8
    pred = nngp.student_t_predict(fit, kc, kd, concentration=a, rate=0.8 * a)
    a_n, b_n = nngp.inverse_gamma_posterior(fit, concentration=a, rate=0.8 * a)
    mean, var = nngp.gaussian_predict(fit, kc, kd, scale=b_n / a_n)
    np.testing.assert_allclose(
        nngp.student_t_log_predictive(yt, pred),
        nngp.gaussian_log_predictive(yt, mean, var),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        nngp.student_t_log_marginal_likelihood(fit, concentration=a, rate=0.8 * a),
        nngp.gaussian_log_marginal_likelihood(fit, scale=0.8),
        atol=1e-4,
    )


def test_general_priors_importance_sampling_agrees_with_quadrature(x64):
    x, y, xt, yt = _data()
    fit, kc, kd, _ = _fit(x, y, xt)
    mean, unit_var = nngp.gaussian_predict(fit, kc, kd)
    priors = [
        nngp.BurrXII(2.0, 1.5, 0.5),
        nngp.half_cauchy_on_std(1.0),
        lambda s: -2.0 * jnp.log1p(s),  # user density (unnormalized)
    ]
    for prior in priors:
        quad = nngp.scale_posterior_quadrature(fit, prior)
        isp = nngp.scale_posterior_importance(
            fit, prior, rng_key=jax.random.key(2), num_samples=2**14
        )
        np.testing.assert_allclose(
            nngp.mixture_log_predictive(yt, mean, unit_var, isp),
            nngp.mixture_log_predictive(yt, mean, unit_var, quad),
            atol=1e-4,
        )
        np.testing.assert_allclose(isp.log_evidence, quad.log_evidence, atol=1e-4)


def test_burr_xii_matches_scipy(x64):
    d = nngp.BurrXII(1.7, 2.3, 0.6)
    s = np.array([0.05, 0.3, 1.0, 4.0])
    np.testing.assert_allclose(
        d.log_prob(s), stats.burr12(1.7, 2.3, scale=0.6).logpdf(s), rtol=1e-12
    )
    draws = np.asarray(d.sample(jax.random.key(0), (4000,)))
    assert stats.kstest(draws, stats.burr12(1.7, 2.3, scale=0.6).cdf).pvalue > 1e-3


def test_low_ess_warns(x64):
    x, y, xt, _ = _data()
    fit, *_ = _fit(x, y, xt)
    far = dist.LogNormal(jnp.log(fit.quad / len(x)) + 6.0, 0.05)
    with pytest.warns(nngp.LowEffectiveSampleSizeWarning, match="effective sample size"):
        post = nngp.scale_posterior_importance(
            fit, far, rng_key=jax.random.key(0), num_samples=256, stratified=False
        )
    assert post.ess < 25
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nngp.scale_posterior_importance(
            fit, dist.InverseGamma(2.0, 1.0), rng_key=jax.random.key(0), num_samples=256
        )


@pytest.mark.parametrize("family", ["gaussian", "inverse_gamma", "burr_xii"])
def test_marginal_likelihood_gradients_match_finite_differences(x64, family):
    x, y, _, _ = _data()
    params = nngp.init_params(family, weight_variance=1.3, bias_variance=0.2, noise_variance=0.1)
    value_and_grad = jax.jit(
        jax.value_and_grad(lambda p: nngp.log_marginal_likelihood(p, x, y, family=family, depth=2))
    )
    _, grad = value_and_grad(params)
    h = 1e-5
    for name in params:
        up, _ = value_and_grad(dict(params, **{name: params[name] + h}))
        down, _ = value_and_grad(dict(params, **{name: params[name] - h}))
        np.testing.assert_allclose(
            grad[name], (up - down) / (2 * h), rtol=1e-5, atol=1e-6, err_msg=name
        )


def test_bad_inputs_give_clear_errors(x64):
    x, y, xt, _ = _data()
    k = nngp.nngp_kernel(x, **KW)
    bad = y.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nngp.gp_fit(k, bad, noise_variance=0.1)
    with pytest.raises(ValueError, match="rows but the kernel has"):
        nngp.gp_fit(k, y[:-1], noise_variance=0.1)
    with pytest.raises(ValueError, match="noise_variance must be non-negative"):
        nngp.gp_fit(k, y, noise_variance=-0.1)
    with pytest.raises(ValueError, match="square"):
        nngp.gp_fit(k[:, :5], y, noise_variance=0.1)
    with pytest.raises(ValueError, match="not positive definite"):
        nngp.gp_fit(-k, y, noise_variance=0.0, jitter=0.0)
    fit = nngp.gp_fit(k, y, noise_variance=0.1)
    with pytest.raises(ValueError, match="concentration must be positive"):
        nngp.inverse_gamma_posterior(fit, concentration=0.0, rate=1.0)
    with pytest.raises(ValueError, match="kernel_cross must have shape"):
        nngp.gaussian_predict(fit, np.ones((4, 3)), np.ones(3))
    with pytest.raises(TypeError, match="prior must be"):
        nngp.scale_posterior_quadrature(fit, 3.0)
    with pytest.raises(ValueError, match="family must be one of"):
        nngp.fit_hyperparameters(x, y, family="cauchy")
    with pytest.raises(ValueError, match="must be positive"):
        nngp.init_params("gaussian", noise_variance=0.0)
    with pytest.raises(ValueError, match="NaN"):
        nngp.predict(nngp.init_params("gaussian"), x, bad, xt, family="gaussian")
