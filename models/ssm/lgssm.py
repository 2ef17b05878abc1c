"""Linear Gaussian state-space model with exact Kalman inference (the ground truth).

.. math::

    X_0 \\sim \\mathcal N(m_0, P_0), \\quad X_t = A X_{t-1} + \\varepsilon_t,\\ \\varepsilon_t
    \\sim \\mathcal N(0, Q), \\quad Y_t = C X_t + \\eta_t,\\ \\eta_t \\sim \\mathcal N(0, R).

Parameters are a dict of matrices ``{"A": (dx, dx), "Q": (dx, dx), "C": (dy, dx),
"R": (dy, dy), "m0": (dx,), "P0": (dx, dx)}``. Models written in an
unconstrained parametrisation pass ``to_matrices`` mapping their ``theta`` to
that dict (see :func:`scalar_matrices`).

Exact quantities: Kalman filter and log-likelihood, Rauch-Tung-Striebel
smoother with lag-one cross-covariances, posterior path sampling (forward
filtering, backward sampling), and the exact score through Fisher's identity
:math:`\\nabla \\log p_\\theta(y) = \\mathbb E_\\theta[\\nabla_\\theta \\log p_\\theta(X, y)
\\mid y]`, computed in closed form from the smoothed moments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from bayes.inference.smc.ssm import AuxiliaryLogweightFn, Proposal, StateSpaceModel
from jax import Array

__all__ = [
    "KalmanOutput",
    "SmootherOutput",
    "exact_score",
    "expected_complete_loglik",
    "kalman_filter",
    "kalman_loglik",
    "linear_gaussian_ssm",
    "optimal_proposal",
    "predictive_logweight",
    "rts_smoother",
    "sample_posterior_paths",
    "scalar_matrices",
    "scalar_phi",
    "scalar_theta",
    "simulate",
]

Matrices = dict[str, Array]


def scalar_theta(phi: float, log_sigma_x: float, log_sigma_y: float) -> dict[str, Array]:
    """``theta`` of :func:`scalar_matrices` from the autoregression coefficient ``phi``.

    Args:
        phi: Coefficient in ``(-1, 1)``.
        log_sigma_x: Log standard deviation of the state noise.
        log_sigma_y: Log standard deviation of the observation noise.

    Returns:
        ``{"atanh_phi", "log_sigma_x", "log_sigma_y"}`` (scalar arrays).
    """
    if not -1.0 < float(phi) < 1.0:
        raise ValueError(f"phi must lie in (-1, 1) (stationary model), got {phi}")
    return {
        "atanh_phi": jnp.arctanh(jnp.asarray(phi, dtype=float)),
        "log_sigma_x": jnp.asarray(log_sigma_x, dtype=float),
        "log_sigma_y": jnp.asarray(log_sigma_y, dtype=float),
    }


def scalar_phi(theta: dict[str, Array]) -> Array:
    """The coefficient :math:`\\phi = \\tanh(\\text{atanh\\_phi})` of a scalar ``theta``."""
    return jnp.tanh(jnp.asarray(theta["atanh_phi"]))


def scalar_matrices(theta: dict[str, Array]) -> Matrices:
    """Matrices of the scalar model ``x_t = phi x_{t-1} + sx e``, ``y_t = x_t + sy n``.

    ``theta = {"atanh_phi", "log_sigma_x", "log_sigma_y"}``, all unconstrained:
    :math:`\\phi = \\tanh(\\text{atanh\\_phi}) \\in (-1, 1)`,
    :math:`s_x = e^{\\text{log\\_sigma\\_x}}`, :math:`s_y = e^{\\text{log\\_sigma\\_y}}`.
    ``X_0`` starts from the stationary law :math:`\\mathcal N(0, s_x^2 / (1 - \\phi^2))`,
    which exists for every ``theta``: a stochastic-approximation step cannot leave
    the stationary region (with ``phi`` itself as the parameter, a step to
    :math:`|\\phi| \\ge 1` made the variance negative and the fit NaN).
    Build ``theta`` from ``phi`` with :func:`scalar_theta`.
    """
    phi = scalar_phi(theta)
    q = jnp.exp(2 * jnp.asarray(theta["log_sigma_x"]))
    r = jnp.exp(2 * jnp.asarray(theta["log_sigma_y"]))
    # 1 - tanh(z)^2 = sech(z)^2, without the cancellation of 1 - phi^2 near |phi| = 1.
    one_minus_phi2 = 1.0 / jnp.cosh(jnp.asarray(theta["atanh_phi"])) ** 2
    return {
        "A": phi.reshape(1, 1),
        "Q": q.reshape(1, 1),
        "C": jnp.ones((1, 1)),
        "R": r.reshape(1, 1),
        "m0": jnp.zeros(1),
        "P0": (q / one_minus_phi2).reshape(1, 1),
    }


def _mvn_logpdf(x: Array, mean: Array, cov: Array) -> Array:
    if x.shape == (1,):
        # Scalar states drop their unit axis: vmapped over particle pairs it becomes
        # the innermost loop of XLA:CPU's fused kernels, which then do not vectorise
        # (the (N, N) backward log-densities of PaRIS ran ~2x slower).
        # The square root is NaN, in value and gradient, for a variance that is not
        # positive, as the Cholesky factor is.
        sd = jnp.sqrt(cov[0, 0])
        z = (x[0] - mean[0]) * (1.0 / sd)
        return -0.5 * z * z - jnp.log(sd) - 0.5 * jnp.log(2 * jnp.pi)
    chol = jnp.linalg.cholesky(cov)
    # A matrix product with the inverse factor, not a triangular solve: under vmap
    # over particle pairs the covariance stays unbatched and the product vectorises,
    # while batched triangular solves run one small LAPACK call per pair on CPU.
    inv_chol = jsl.solve_triangular(chol, jnp.eye(cov.shape[-1], dtype=cov.dtype), lower=True)
    z = inv_chol @ (x - mean)
    half_logdet = jnp.sum(jnp.log(jnp.diag(chol)))
    return -0.5 * (z @ z) - half_logdet - 0.5 * x.shape[-1] * jnp.log(2 * jnp.pi)


def _mvn_sample(rng_key: Array, mean: Array, cov: Array) -> Array:
    return mean + jnp.linalg.cholesky(cov) @ jax.random.normal(rng_key, mean.shape)


def linear_gaussian_ssm(
    to_matrices: Callable[[Any], Matrices] | None = None,
) -> StateSpaceModel:
    """The LGSSM in the :class:`~bayes.inference.smc.ssm.StateSpaceModel` contract.

    Args:
        to_matrices: Maps ``theta`` to the matrices dict; ``None`` when
            ``theta`` already is that dict.

    Returns:
        The model; states have shape ``(dx,)`` and observations ``(dy,)``. The
            transition log-density bound is :math:`-\\frac12\\log|2\\pi Q|`.
    """
    mats = to_matrices if to_matrices is not None else (lambda theta: theta)

    def initial_sampler(rng_key, theta):
        m = mats(theta)
        return _mvn_sample(rng_key, m["m0"], m["P0"])

    def initial_logdensity(x, theta):
        m = mats(theta)
        return _mvn_logpdf(x, m["m0"], m["P0"])

    def transition_sampler(rng_key, x_prev, t, theta):
        m = mats(theta)
        return _mvn_sample(rng_key, m["A"] @ x_prev, m["Q"])

    def transition_logdensity(x_prev, x, t, theta):
        m = mats(theta)
        return _mvn_logpdf(x, m["A"] @ x_prev, m["Q"])

    def observation_logdensity(x, y, t, theta):
        m = mats(theta)
        return _mvn_logpdf(y, m["C"] @ x, m["R"])

    def bound(t, theta):
        q = mats(theta)["Q"]
        return -0.5 * jnp.linalg.slogdet(2 * jnp.pi * q)[1]

    return StateSpaceModel(
        initial_sampler,
        initial_logdensity,
        transition_sampler,
        transition_logdensity,
        observation_logdensity,
        bound,
    )


def _condition(mean: Array, cov: Array, y: Array, m: Matrices) -> tuple[Array, Array]:
    # Law of X ~ N(mean, cov) given Y = C X + N(0, R) = y.
    s = m["C"] @ cov @ m["C"].T + m["R"]
    gain = jnp.linalg.solve(s, m["C"] @ cov).T
    post = cov - gain @ s @ gain.T
    return mean + gain @ (y - m["C"] @ mean), 0.5 * (post + post.T)


def optimal_proposal(to_matrices: Callable[[Any], Matrices] | None = None) -> Proposal:
    """The locally optimal proposal :math:`p(x_t \\mid x_{t-1}, y_t)` of the LGSSM.

    With :func:`predictive_logweight` as look-ahead it makes the auxiliary
    particle filter fully adapted (uniform second-stage weights).

    Args:
        to_matrices: As in :func:`linear_gaussian_ssm`.
    """
    mats = to_matrices if to_matrices is not None else (lambda theta: theta)

    def initial(y0, theta):
        m = mats(theta)
        return _condition(m["m0"], m["P0"], y0, m)

    def step(x_prev, y, theta):
        m = mats(theta)
        return _condition(m["A"] @ x_prev, m["Q"], y, m)

    return Proposal(
        lambda rng_key, y0, theta: _mvn_sample(rng_key, *initial(y0, theta)),
        lambda x0, y0, theta: _mvn_logpdf(x0, *initial(y0, theta)),
        lambda rng_key, x_prev, y, t, theta: _mvn_sample(rng_key, *step(x_prev, y, theta)),
        lambda x_prev, x, y, t, theta: _mvn_logpdf(x, *step(x_prev, y, theta)),
    )


def predictive_logweight(
    to_matrices: Callable[[Any], Matrices] | None = None,
) -> AuxiliaryLogweightFn:
    """Exact look-ahead :math:`\\log p(y_t \\mid x_{t-1}) = \\log \\mathcal N(y_t; CAx_{t-1},
    CQC^\\top + R)` for the auxiliary particle filter."""
    mats = to_matrices if to_matrices is not None else (lambda theta: theta)

    def logweight(x_prev, y, t, theta):
        m = mats(theta)
        return _mvn_logpdf(y, m["C"] @ m["A"] @ x_prev, m["C"] @ m["Q"] @ m["C"].T + m["R"])

    return logweight


def simulate(rng_key: Array, params: Matrices, num_steps: int) -> tuple[Array, Array]:
    """Draw ``(states (T, dx), observations (T, dy))`` from the model."""
    k0, k_rest = jax.random.split(rng_key)
    x0 = _mvn_sample(k0, params["m0"], params["P0"])

    def body(x_prev, key):
        x = _mvn_sample(key, params["A"] @ x_prev, params["Q"])
        return x, x

    _, xs = jax.lax.scan(body, x0, jax.random.split(k_rest, num_steps - 1))
    xs = jnp.concatenate([x0[None], xs])
    noise_keys = jax.random.split(jax.random.fold_in(rng_key, 1), num_steps)
    ys = jax.vmap(lambda k, x: _mvn_sample(k, params["C"] @ x, params["R"]))(noise_keys, xs)
    return xs, ys


class KalmanOutput(NamedTuple):
    """Kalman filter: ``filtered_means (T, dx)``, ``filtered_covs (T, dx, dx)``,
    ``predicted_means``/``predicted_covs`` (same shapes; row 0 is the prior) and
    the exact ``log_likelihood``."""

    filtered_means: Array
    filtered_covs: Array
    predicted_means: Array
    predicted_covs: Array
    log_likelihood: Array


class SmootherOutput(NamedTuple):
    """RTS smoother: ``means (T, dx)``, ``covs (T, dx, dx)`` and ``cross_covs``
    ``(T-1, dx, dx)`` with ``cross_covs[t] = Cov(X_t, X_{t+1} | y)``."""

    means: Array
    covs: Array
    cross_covs: Array


def kalman_filter(params: Matrices, observations: Array) -> KalmanOutput:
    """Exact filter for observations ``(T, dy)``."""
    A, Q, C, R = params["A"], params["Q"], params["C"], params["R"]

    def update(m_pred, p_pred, y):
        m, p = _condition(m_pred, p_pred, y, params)
        return m, p, _mvn_logpdf(y, C @ m_pred, C @ p_pred @ C.T + R)

    def body(carry, y):
        m_prev, p_prev = carry
        m_pred = A @ m_prev
        p_pred = A @ p_prev @ A.T + Q
        m, p, ll = update(m_pred, p_pred, y)
        return (m, p), (m, p, m_pred, p_pred, ll)

    m0, p0, ll0 = update(params["m0"], params["P0"], observations[0])
    _, (ms, ps, mps, pps, lls) = jax.lax.scan(body, (m0, p0), observations[1:])

    def cat(first, rest):
        return jnp.concatenate([first[None], rest])

    return KalmanOutput(
        cat(m0, ms),
        cat(p0, ps),
        cat(params["m0"], mps),
        cat(params["P0"], pps),
        ll0 + jnp.sum(lls),
    )


def kalman_loglik(params: Matrices, observations: Array) -> Array:
    """Exact :math:`\\log p(y_{0:T-1})`."""
    return kalman_filter(params, observations).log_likelihood


def _smoothing_gains(params: Matrices, kf: KalmanOutput) -> Array:
    A = params["A"]
    return jax.vmap(lambda p, pp: jnp.linalg.solve(pp, A @ p).T)(
        kf.filtered_covs[:-1], kf.predicted_covs[1:]
    )


def rts_smoother(params: Matrices, observations: Array) -> SmootherOutput:
    """Rauch-Tung-Striebel smoother with lag-one cross-covariances."""
    kf = kalman_filter(params, observations)
    gains = _smoothing_gains(params, kf)

    def body(carry, inputs):
        m_next, p_next = carry
        m_f, p_f, m_p, p_p, g = inputs
        m = m_f + g @ (m_next - m_p)
        p = p_f + g @ (p_next - p_p) @ g.T
        return (m, 0.5 * (p + p.T)), (m, p, g @ p_next)

    last = (kf.filtered_means[-1], kf.filtered_covs[-1])
    inputs = (
        kf.filtered_means[:-1],
        kf.filtered_covs[:-1],
        kf.predicted_means[1:],
        kf.predicted_covs[1:],
        gains,
    )
    _, (ms, ps, cross) = jax.lax.scan(body, last, inputs, reverse=True)
    return SmootherOutput(
        jnp.concatenate([ms, last[0][None]]), jnp.concatenate([ps, last[1][None]]), cross
    )


def sample_posterior_paths(
    rng_key: Array, params: Matrices, observations: Array, num_samples: int
) -> Array:
    """Exact draws of :math:`X_{0:T-1} \\mid y` (forward filtering, backward sampling).

    Returns:
        Paths of shape ``(num_samples, T, dx)``.
    """
    kf = kalman_filter(params, observations)
    gains = _smoothing_gains(params, kf)

    def one(key):
        k_last, k_rest = jax.random.split(key)
        x_last = _mvn_sample(k_last, kf.filtered_means[-1], kf.filtered_covs[-1])

        def body(x_next, inputs):
            k, m_f, p_f, m_p, p_p, g = inputs
            mean = m_f + g @ (x_next - m_p)
            cov = p_f - g @ p_p @ g.T
            x = _mvn_sample(k, mean, 0.5 * (cov + cov.T))
            return x, x

        inputs = (
            jax.random.split(k_rest, observations.shape[0] - 1),
            kf.filtered_means[:-1],
            kf.filtered_covs[:-1],
            kf.predicted_means[1:],
            kf.predicted_covs[1:],
            gains,
        )
        _, xs = jax.lax.scan(body, x_last, inputs, reverse=True)
        return jnp.concatenate([xs, x_last[None]])

    return jax.vmap(one)(jax.random.split(rng_key, num_samples))


def _expected_gauss(resid: Array, cov: Array) -> Array:
    # E log N(x; mu, cov) given E[(x - mu)(x - mu)'] = resid.
    logdet = jnp.linalg.slogdet(2 * jnp.pi * cov)[1]
    return -0.5 * (logdet + jnp.trace(jnp.linalg.solve(cov, resid)))


def _linear_resid(s_xx: Array, s_xz: Array, s_zz: Array, B: Array) -> Array:
    # E[(x - B z)(x - B z)'] from E[xx'], E[xz'], E[zz'].
    return s_xx - B @ s_xz.T - s_xz @ B.T + B @ s_zz @ B.T


def expected_complete_loglik(
    params: Matrices, smoothed: SmootherOutput, observations: Array
) -> Array:
    """:math:`\\mathbb E[\\log p_{\\theta'}(X, y)]` under smoothed moments (EM's Q-function).

    Args:
        params: Matrices of :math:`\\theta'` (differentiate with respect to these).
        smoothed: Smoother output at :math:`\\theta`.
        observations: Shape ``(T, dy)``.
    """
    m, p, cross = smoothed
    second = p + jnp.einsum("ti,tj->tij", m, m)
    lag = cross + jnp.einsum("ti,tj->tij", m[:-1], m[1:])  # E[x_t x_{t+1}']
    m0 = params["m0"]
    resid0 = second[0] - jnp.outer(m[0], m0) - jnp.outer(m0, m[0]) + jnp.outer(m0, m0)
    q0 = _expected_gauss(resid0, params["P0"])
    trans = jax.vmap(
        lambda sxx, sxz, szz: _expected_gauss(
            _linear_resid(sxx, sxz, szz, params["A"]), params["Q"]
        )
    )(second[1:], jnp.swapaxes(lag, 1, 2), second[:-1])
    obs = jax.vmap(
        lambda y, mt, st: _expected_gauss(
            _linear_resid(jnp.outer(y, y), jnp.outer(y, mt), st, params["C"]), params["R"]
        )
    )(observations, m, second)
    return q0 + jnp.sum(trans) + jnp.sum(obs)


def exact_score(
    theta: Any,
    observations: Array,
    to_matrices: Callable[[Any], Matrices] | None = None,
) -> Any:
    """Exact :math:`\\nabla_\\theta \\log p_\\theta(y)` by Fisher's identity.

    The gradient of :func:`expected_complete_loglik` in :math:`\\theta'` at
    :math:`\\theta' = \\theta`, with the smoothed moments held fixed at
    :math:`\\theta`; it equals ``jax.grad`` of :func:`kalman_loglik`.

    Returns:
        A pytree shaped like ``theta``.
    """
    mats = to_matrices if to_matrices is not None else (lambda th: th)
    smoothed = jax.lax.stop_gradient(rts_smoother(mats(theta), observations))
    return jax.grad(lambda th: expected_complete_loglik(mats(th), smoothed, observations))(theta)
