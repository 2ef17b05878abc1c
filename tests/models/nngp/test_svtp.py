"""Sparse variational Student-t process: exact limit and a softmax classifier."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bayes.inference.vi import elbo
from bayes.models import nngp
from bayes.models.nngp.classification import (
    class_probabilities,
    expected_calibration_error,
    one_hot_targets,
)

KW = dict(depth=2, activation="relu", weight_variance=1.5, bias_variance=0.1)


def test_bound_is_exact_at_the_conjugate_posterior(x64):
    """Gaussian version, Z = X: at the closed-form posterior every ELBO draw is the t-process LML.

    Elsewhere (the prior as guide) the mean ELBO lies below it by many standard
    errors, and the latent predictive equals the closed-form Student-t predictive.
    """
    x, y, fit, q_u, kw = _conjugate_setting()
    a, b, n, c = kw["concentration"], kw["rate"], x.shape[0], y.shape[1]
    xt = np.random.default_rng(1).normal(size=(5, 3))
    model = nngp.svtp(x, c, **kw, **KW)
    lml = nngp.student_t_log_marginal_likelihood(fit, concentration=a, rate=b)
    a_n, b_n = nngp.inverse_gamma_posterior(fit, concentration=a, rate=b)
    exact = dict(svtp_alpha=a_n, svtp_beta=b_n, **q_u)
    prior = dict(
        svtp_alpha=jnp.asarray(a),
        svtp_beta=jnp.asarray(b),
        svtp_loc=jnp.zeros((c, n)),
        svtp_scale_tril=jnp.broadcast_to(jnp.eye(n), (c, n, n)),
        svtp_inducing=jnp.asarray(x),
    )

    @jax.jit
    def draws(params, key):
        keys = jax.random.split(key, 200)
        return jax.vmap(lambda k: elbo(model.model, model.guide, params, x, y, rng_key=k))(keys)

    at_exact = draws(exact, jax.random.key(1))
    # the jitter-level conditional variance of f leaves draw noise of sd ~2e-6
    np.testing.assert_allclose(at_exact, lml, atol=2e-5)
    at_prior = draws(prior, jax.random.key(2))
    assert np.mean(at_prior) + 5 * np.std(at_prior) / np.sqrt(200) < lml

    loc, unit_var = nngp.svtp_latent_predict(nngp.SVTPFit(model, exact, None), xt)
    pred = nngp.student_t_predict(
        fit, nngp.nngp_kernel(x, xt, **KW), nngp.kernel_diag(xt, **KW),
        concentration=a, rate=b, include_noise=False,
    )  # fmt: skip
    np.testing.assert_allclose(loc, pred.loc, atol=1e-8)
    np.testing.assert_allclose(b_n / a_n * unit_var, np.tile(pred.scale2[:, None], c), rtol=1e-4)


def _conjugate_setting():
    """Gaussian version with Z = X and its closed-form posterior (whitened)."""
    rng = np.random.default_rng(0)
    n, c, sig2, a, b, jitter = 12, 2, 0.1, 2.5, 1.5, 1e-14
    x = rng.normal(size=(n, 3))
    y = np.sin(x[:, :c]) + 0.3 * rng.normal(size=(n, c))
    fit = nngp.gp_fit(nngp.nngp_kernel(x, **KW), y, noise_variance=sig2, jitter=jitter)
    k = np.asarray(nngp.nngp_kernel(x, **KW))
    chol = np.linalg.cholesky(k + jitter * np.mean(np.diag(k)) * np.eye(n))
    cov = np.linalg.inv(np.eye(n) + chol.T @ chol / sig2)
    q_u = dict(
        svtp_loc=jnp.asarray((cov @ chol.T @ y / sig2).T),
        svtp_scale_tril=jnp.broadcast_to(np.linalg.cholesky(cov), (c, n, n)),
        svtp_inducing=jnp.asarray(x),
    )
    kw = dict(likelihood="gaussian", concentration=a, rate=b, noise_variance=sig2, jitter=jitter)
    return x, y, fit, q_u, kw


def test_marginal_objective_is_unbiased_for_the_bound(x64):
    """At the exact posterior the bound is the log evidence: the marginal objective on
    minibatches of 4 of the 12 rows averages to it within Monte Carlo error, for
    the Student-t process (closed-form t LML) and the Gaussian one (Gaussian LML)."""
    x, y, fit, q_u, kw = _conjugate_setting()
    a, b = kw["concentration"], kw["rate"]
    a_n, b_n = nngp.inverse_gamma_posterior(fit, concentration=a, rate=b)
    cases = [
        ("student_t", dict(svtp_alpha=a_n, svtp_beta=b_n),
         nngp.student_t_log_marginal_likelihood(fit, concentration=a, rate=b)),
        ("gaussian", dict(svtp_scale=jnp.asarray(0.7)),
         nngp.gaussian_log_marginal_likelihood(fit, scale=0.7)),
    ]  # fmt: skip
    keys = jax.random.split(jax.random.key(3), 400)
    for process, q_s, lml in cases:
        model = nngp.svtp(x, 2, process=process, **kw, **KW)
        params = {**q_u, **q_s}
        program = nngp.svtp_objective(model, batch_size=4)

        def one(k, program=program, model=model, params=params):
            return program(model.model, model.guide, params, x, y, rng_key=k)

        draws = jax.jit(jax.vmap(one))(keys)
        se = np.std(draws) / np.sqrt(len(draws))
        assert abs(np.mean(draws) - lml) < 4 * se + 1e-6, process
        assert np.std(draws) > 0.1  # the minibatches do vary: the test can fail
        # the joint estimator (the VI layer's elbo) is exact at every draw
        joint = nngp.svtp_objective(model, kind="joint")
        one = joint(model.model, model.guide, params, x, y, rng_key=jax.random.key(0))
        np.testing.assert_allclose(one, lml, atol=2e-5)


def test_scale_quadrature_matches_inverse_gamma_moments(x64):
    """The 24-node quadrature over q(s) = InvGamma(alpha, beta): E[1/s] = alpha / beta,
    E[log s] = log beta - digamma(alpha), to the documented accuracy."""
    from bayes.models.nngp.svtp import _scale_nodes
    from scipy.special import digamma

    for alpha, tol in ((2.0, 1e-4), (5.0, 1e-6), (50.0, 1e-10)):
        params = dict(svtp_alpha=jnp.asarray(alpha), svtp_beta=jnp.asarray(1.7))
        s, w = _scale_nodes(dict(process="student_t"), params)
        np.testing.assert_allclose(np.sum(w), 1.0, rtol=1e-12)
        np.testing.assert_allclose(np.sum(w / s), alpha / 1.7, rtol=tol)
        np.testing.assert_allclose(np.sum(w * np.log(s)), np.log(1.7) - digamma(alpha), atol=tol)


def _blobs(rng, n):
    centres = np.array([[0.0, 2.0], [-1.8, -1.0], [1.8, -1.0]])
    labels = np.arange(n) % 3
    return (centres[labels] + 0.7 * rng.normal(size=(n, 2))).astype(np.float32), labels


def _nll(probs, labels):
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12))))


@pytest.mark.slow
def test_softmax_classifier_on_blobs_is_accurate_and_calibrated_under_corruption():
    """Three Gaussian blobs: accurate in distribution; on noise-corrupted inputs its NLL
    and ECE are no worse than the one-hot NNGP regression baseline (temperature tuned on
    clean validation data)."""
    rng = np.random.default_rng(0)
    (x, y), (xv, yv), (xt, yt) = _blobs(rng, 90), _blobs(rng, 90), _blobs(rng, 90)
    corrupted = xt + 1.5 * rng.normal(size=xt.shape).astype(np.float32)
    kw = dict(depth=1, activation="relu", weight_variance=2.0, bias_variance=0.1)
    model = nngp.svtp(x[:12], 3, jitter=1e-5, **kw)
    fit = nngp.svtp_fit(model, x, y, rng_key=jax.random.key(0), num_steps=500, learning_rate=0.02)
    assert np.mean(fit.elbo_trace[-100:]) > np.mean(fit.elbo_trace[:50]) + 20
    key = jax.random.key(1)
    p_test = np.asarray(nngp.svtp_class_probabilities(fit, xt, rng_key=key))
    p_corr = np.asarray(nngp.svtp_class_probabilities(fit, corrupted, rng_key=key))
    np.testing.assert_allclose(p_test.sum(1), 1.0, rtol=1e-5)
    sharper = np.asarray(nngp.svtp_class_probabilities(fit, xt, rng_key=key, temperature=0.5))
    assert np.mean(sharper.max(1)) > np.mean(p_test.max(1))
    assert np.mean(p_test.argmax(1) == yt) >= 0.93
    assert np.mean(p_corr.argmax(1) == yt) >= 0.65

    gp = nngp.gp_fit(nngp.nngp_kernel(x, **kw), one_hot_targets(y, 3), noise_variance=0.1)

    def baseline(xs, tau):
        mean, var = nngp.gaussian_predict(
            gp, nngp.nngp_kernel(x, xs, **kw), nngp.kernel_diag(xs, **kw), include_noise=False
        )
        ones = jnp.ones((256, xs.shape[0]))
        return np.asarray(class_probabilities(mean, var, ones, rng_key=key, temperature=tau))

    tau = min(np.geomspace(0.02, 1.0, 12), key=lambda t: _nll(baseline(xv, t), yv))
    b_corr = baseline(corrupted, tau)
    assert _nll(p_corr, yt) <= _nll(b_corr, yt)
    assert expected_calibration_error(p_corr, yt) <= expected_calibration_error(b_corr, yt) + 0.02


def test_bad_inputs_raise_clear_errors():
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="inducing_inputs"):
        nngp.svtp(np.zeros(3), 2)
    with pytest.raises(ValueError, match="likelihood"):
        nngp.svtp(x, 2, likelihood="probit")
    with pytest.raises(ValueError, match="concentration"):
        nngp.svtp(x, 2, concentration=0.0)
    with pytest.raises(ValueError, match="scale_estimator"):
        nngp.svtp(x, 2, scale_estimator="enum")
    with pytest.raises(ValueError, match="weight_variance"):
        nngp.svtp(x, 2, weight_variance=-1.0)
    model = nngp.svtp(x, 2)
    with pytest.raises(ValueError, match="labels must lie"):
        nngp.svtp_fit(model, x, np.array([0, 1, 2, 0]), rng_key=jax.random.key(0))
    with pytest.raises(ValueError, match="integers of shape"):
        nngp.svtp_fit(model, x, np.zeros(4), rng_key=jax.random.key(0))
    gaussian = nngp.svtp(x, 2, likelihood="gaussian")
    with pytest.raises(ValueError, match="finite with shape"):
        nngp.svtp_fit(gaussian, x, np.full((4, 2), np.nan), rng_key=jax.random.key(0))
