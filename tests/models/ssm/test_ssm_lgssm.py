"""Kalman ground truth checked against dense Gaussian conditioning."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bayes.models import ssm
from scipy import stats


def _params():
    return {
        "A": jnp.array([[0.9, 0.2], [-0.1, 0.7]]),
        "Q": jnp.array([[0.5, 0.1], [0.1, 0.3]]),
        "C": jnp.array([[1.0, 0.5]]),
        "R": jnp.array([[0.4]]),
        "m0": jnp.array([0.3, -0.2]),
        "P0": jnp.array([[1.0, 0.2], [0.2, 0.8]]),
    }


def _dense_joint(params, T):
    """Mean and covariance of (x_{0:T-1}, y_{0:T-1}) stacked (numpy, float64)."""
    p = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    dx, dy = p["C"].shape[1], p["C"].shape[0]
    # x = L e with e = (x0 - m0, eps_1, ..., eps_{T-1}); build the linear map.
    mean_x = [p["m0"]]
    for _ in range(1, T):
        mean_x.append(p["A"] @ mean_x[-1])
    big = np.zeros((T * dx, T * dx))
    for t in range(T):
        for s in range(t + 1):
            power = np.linalg.matrix_power(p["A"], t - s)
            big[t * dx : (t + 1) * dx, s * dx : (s + 1) * dx] = power
    noise = np.zeros((T * dx, T * dx))
    noise[:dx, :dx] = p["P0"]
    for t in range(1, T):
        noise[t * dx : (t + 1) * dx, t * dx : (t + 1) * dx] = p["Q"]
    cov_x = big @ noise @ big.T
    cmat = np.kron(np.eye(T), p["C"])
    cov_y = cmat @ cov_x @ cmat.T + np.kron(np.eye(T), p["R"])
    return np.concatenate(mean_x), cov_x, cmat, cov_y, dx, dy


def test_kalman_and_rts_match_dense_conditioning(x64) -> None:
    params = _params()
    T = 6
    _, ys = ssm.simulate(jax.random.key(1), params, T)
    mean_x, cov_x, cmat, cov_y, dx, _ = _dense_joint(params, T)
    y = np.asarray(ys).ravel()
    loglik = stats.multivariate_normal(cmat @ mean_x, cov_y).logpdf(y)
    np.testing.assert_allclose(float(ssm.kalman_loglik(params, ys)), loglik, rtol=1e-10)

    gain = cov_x @ cmat.T @ np.linalg.inv(cov_y)
    post_mean = mean_x + gain @ (y - cmat @ mean_x)
    post_cov = cov_x - gain @ cmat @ cov_x
    sm = ssm.rts_smoother(params, ys)
    np.testing.assert_allclose(np.asarray(sm.means).ravel(), post_mean, atol=1e-10)
    for t in range(T):
        block = post_cov[t * dx : (t + 1) * dx, t * dx : (t + 1) * dx]
        np.testing.assert_allclose(np.asarray(sm.covs[t]), block, atol=1e-10)
    for t in range(T - 1):
        block = post_cov[t * dx : (t + 1) * dx, (t + 1) * dx : (t + 2) * dx]
        np.testing.assert_allclose(np.asarray(sm.cross_covs[t]), block, atol=1e-10)

    kf = ssm.kalman_filter(params, ys)
    # Filtering at the last time equals smoothing there.
    np.testing.assert_allclose(np.asarray(kf.filtered_means[-1]), post_mean[-dx:], atol=1e-10)


def test_exact_score_matches_autodiff(x64) -> None:
    params = _params()
    _, ys = ssm.simulate(jax.random.key(2), params, 12)
    auto = jax.grad(ssm.kalman_loglik)(params, ys)
    fisher = ssm.exact_score(params, ys)
    for name in params:
        f, a = np.asarray(fisher[name]), np.asarray(auto[name])
        if name in ("Q", "R", "P0"):
            # Only the symmetric part of a covariance gradient is defined (the
            # Cholesky factorisation reads one triangle).
            f, a = (f + f.T) / 2, (a + a.T) / 2
        np.testing.assert_allclose(f, a, atol=1e-8)
    theta = ssm.scalar_theta(0.7, -0.2, 0.1)
    _, ys1 = ssm.simulate(jax.random.key(3), ssm.scalar_matrices(theta), 30)
    auto = jax.grad(lambda th: ssm.kalman_loglik(ssm.scalar_matrices(th), ys1))(theta)
    fisher = ssm.exact_score(theta, ys1, ssm.scalar_matrices)
    for name in theta:
        np.testing.assert_allclose(float(fisher[name]), float(auto[name]), rtol=1e-8)


def test_scalar_parametrisation_is_stationary_everywhere() -> None:
    theta = ssm.scalar_theta(0.8, 0.1, -0.3)
    np.testing.assert_allclose(float(ssm.scalar_phi(theta)), 0.8, rtol=1e-6)
    # Any unconstrained value maps into (-1, 1) with a positive stationary variance,
    # even where 1 - phi^2 rounds to 0 in float32.
    for z in (-12.0, -3.0, 0.0, 3.0, 12.0):
        m = ssm.scalar_matrices({**theta, "atanh_phi": jnp.asarray(z)})
        phi, q, p0 = float(m["A"][0, 0]), float(m["Q"][0, 0]), float(m["P0"][0, 0])
        assert -1.0 <= phi <= 1.0 and np.isfinite(p0) and p0 > 0
        np.testing.assert_allclose(p0, q * np.cosh(z) ** 2, rtol=1e-5)
    with pytest.raises(ValueError, match=r"phi must lie in \(-1, 1\)"):
        ssm.scalar_theta(1.0, 0.0, 0.0)


def test_posterior_paths_have_smoother_moments(x64) -> None:
    params = _params()
    T, S = 8, 4000
    _, ys = ssm.simulate(jax.random.key(4), params, T)
    paths = np.asarray(ssm.sample_posterior_paths(jax.random.key(5), params, ys, S))
    sm = ssm.rts_smoother(params, ys)
    sd = np.sqrt(np.diagonal(np.asarray(sm.covs), axis1=1, axis2=2))
    z = (paths.mean(0) - np.asarray(sm.means)) / (sd / np.sqrt(S))
    assert np.all(np.abs(z) < 4.0), z
    # Lag-one cross-covariance of the first coordinate: z-test with its MC error.
    a = paths[:, :-1, 0] - paths[:, :-1, 0].mean(0)
    b = paths[:, 1:, 0] - paths[:, 1:, 0].mean(0)
    prod = a * b
    z = (prod.mean(0) - np.asarray(sm.cross_covs)[:, 0, 0]) / (prod.std(0) / np.sqrt(S))
    assert np.all(np.abs(z) < 4.0), z
