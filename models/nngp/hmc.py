"""Full Bayesian NNGP regression: NUTS over the kernel hyperparameters and the scale.

Type-II maximum likelihood (:func:`~bayes.models.nngp.regression.fit_hyperparameters`)
plugs one value of the hyperparameters into the predictive. Here they get priors and
are sampled with NUTS through :func:`bayes.sample`; the predictive is the average of
the per-draw predictive densities,

.. math::

    p(y_* \\mid Y) \\approx \\frac1K \\sum_{k=1}^K p(y_* \\mid Y, \\theta_k),
    \\qquad \\theta_k \\sim p(\\theta \\mid Y).

The position is unconstrained: ``theta = (log sigma_w^2, log sigma_b^2, log sigma^2)``
(weight and bias variances of the network, noise relative to the scale) and, with
``scale="sampled"``, ``log s``. The weakly-informative priors (targets standardized,
inputs scaled by their dimension as in :mod:`~bayes.models.nngp.kernels`) are

* ``log sigma_w^2 ~ N(log 2, 1)``: centred on ReLU's critical weight variance,
  a factor ``e`` either way at one standard deviation;
* ``log sigma_b^2 ~ N(log 0.1, 1.5^2)`` and ``log sigma^2 ~ N(log 0.1, 1.5^2)``:
  from 0.005 to 2 within two standard deviations;
* ``s ~ InverseGamma(a, b)``, by default ``a = 2, b = 1`` (prior mean 1, the
  variance of standardized targets; infinite prior variance).

Two treatments of the readout scale ``s`` (see :mod:`~bayes.models.nngp.gp`):

* ``scale="integrated"`` (default): ``s`` is integrated out in closed form, the
  log-density is the Student-t process log marginal likelihood plus the log priors,
  and each draw predicts with its multivariate t (``2a + nc`` degrees of freedom);
* ``scale="sampled"``: ``log s`` is a coordinate of the position with log-density
  ``log N(Y; 0, s A) + log IG(s; a, b) + log s`` (the last term the Jacobian of
  ``s = e^u``), and each draw predicts with ``N(mu_*, s v_*)``. With the kernel
  hyperparameters held fixed (``fixed=``) the exact posterior of ``s`` is
  ``InverseGamma(a + nc/2, b + Q/2)``, which the tests use as ground truth.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp

from bayes._blas import serial_blas

from .gp import (
    _normal_logpdf,
    _t_logpdf,
    gaussian_log_marginal_likelihood,
    gaussian_predict,
    gp_fit,
    student_t_log_marginal_likelihood,
    student_t_predict,
    validate_targets,
)
from .kernels import _check_params, kernel_diag, kernel_matrix, validate_inputs

if TYPE_CHECKING:
    import arviz as az
    from jax.typing import ArrayLike

__all__ = [
    "HYPERPARAMETERS",
    "PRIOR_LOC",
    "PRIOR_SCALE",
    "HMCPredictive",
    "hmc_predict",
    "hyperparameter_logdensity",
    "sample_hyperparameters",
]

#: Kernel hyperparameters on the log scale, in the order of the prior vectors.
HYPERPARAMETERS = ("log_weight_variance", "log_bias_variance", "log_noise_variance")
#: Means of the normal priors of :data:`HYPERPARAMETERS`.
PRIOR_LOC = (float(np.log(2.0)), float(np.log(0.1)), float(np.log(0.1)))
#: Standard deviations of the normal priors of :data:`HYPERPARAMETERS`.
PRIOR_SCALE = (1.0, 1.5, 1.5)
_LOG_2PI = float(np.log(2 * np.pi))
Scale = Literal["integrated", "sampled"]


class HMCPredictive(NamedTuple):
    """Predictive of the NUTS draws: an equal-weight mixture over draws.

    Attributes:
        mean: Predictive mean, shape ``(m, c)``.
        variance: Predictive variance of each output (noise included; the within-draw
            variance averaged plus the variance of the per-draw means), shape ``(m, c)``.
        log_density: Log predictive density of each test row, ``log mean_k p(y_* | theta_k)``,
            shape ``(m,)`` (``None`` without test targets).
        draw_log_density: ``log p(y_* | Y, theta_k)`` per draw and test row, shape
            ``(K, m)`` (``None`` without test targets).
    """

    mean: jax.Array
    variance: jax.Array
    log_density: jax.Array | None
    draw_log_density: jax.Array | None


def _check_scale(scale: str) -> None:
    if scale not in ("integrated", "sampled"):
        raise ValueError(f"scale must be 'integrated' or 'sampled', got {scale!r}")


def _theta(position, fixed):
    """Full parameter dict: the sampled coordinates and the fixed values."""
    return {**fixed, **position}


def _fit(theta, x, y, depth, activation, jitter):
    kw = dict(
        weight_variance=jnp.exp(theta["log_weight_variance"]),
        bias_variance=jnp.exp(theta["log_bias_variance"]),
        depth=depth,
        activation=activation,
    )
    k = kernel_matrix(x, **kw)
    return gp_fit(k, y, noise_variance=jnp.exp(theta["log_noise_variance"]), jitter=jitter), kw


def _log_inverse_gamma(s, a, b):
    return a * jnp.log(b) - gammaln(a) - (a + 1) * jnp.log(s) - b / s


def hyperparameter_logdensity(
    position: dict[str, jax.Array],
    *,
    x: jax.Array,
    y: jax.Array,
    depth: int = 1,
    activation: str = "relu",
    concentration: float = 2.0,
    rate: float = 1.0,
    jitter: float = 1e-8,
    **fixed: jax.Array,
) -> jax.Array:
    """Log posterior density (up to a constant) of the hyperparameters, shape ``()``.

    Args:
        position: Sampled coordinates: any of :data:`HYPERPARAMETERS` not in ``fixed``
            and, for the sampled scale, ``log_scale``; each of shape ``()``.
        x: Training inputs, shape ``(n, d)``.
        y: Training targets, shape ``(n, c)``.
        depth: Hidden layers of the network.
        activation: ``"relu"`` or ``"erf"``.
        concentration: Inverse-gamma prior shape ``a`` of the scale.
        rate: Inverse-gamma prior rate ``b`` of the scale.
        jitter: Relative diagonal jitter of the Cholesky factorization.
        **fixed: Values of the :data:`HYPERPARAMETERS` held fixed (log scale).

    Returns:
        ``log p(Y | theta[, s]) + log p(theta) [+ log p(s) + log s]``: with ``log_scale``
            in ``position`` the Gaussian marginal likelihood at that scale, otherwise the
            Student-t process marginal likelihood with ``s`` integrated out.
    """
    theta = _theta(position, fixed)
    fit, _ = _fit(theta, x, y, depth, activation, jitter)
    lp = sum(
        -0.5 * ((position[name] - loc) / sd) ** 2 - jnp.log(sd) - 0.5 * _LOG_2PI
        for name, loc, sd in zip(HYPERPARAMETERS, PRIOR_LOC, PRIOR_SCALE)
        if name in position
    )
    if "log_scale" in position:
        u = position["log_scale"]
        s = jnp.exp(u)
        return (
            lp
            + gaussian_log_marginal_likelihood(fit, scale=s)
            + _log_inverse_gamma(s, concentration, rate)
            + u
        )
    return lp + student_t_log_marginal_likelihood(fit, concentration=concentration, rate=rate)


def _initial_position(scale: Scale, fixed: dict[str, float]) -> dict[str, jax.Array]:
    start = {n: loc for n, loc in zip(HYPERPARAMETERS, PRIOR_LOC) if n not in fixed}
    if scale == "sampled":
        start["log_scale"] = 0.0
    return {k: jnp.asarray(v, jnp.float64) for k, v in start.items()}


def _validated(x, y, depth, activation, concentration, rate, fixed):
    _check_params(1.0, 0.0, depth, activation)
    for name, v in (("concentration", concentration), ("rate", rate)):
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be positive and finite, got {v!r}")
    unknown = set(fixed) - set(HYPERPARAMETERS)
    if unknown:
        raise ValueError(f"fixed takes {HYPERPARAMETERS}, got {sorted(unknown)}")
    for name, v in fixed.items():
        if not np.isfinite(v):
            raise ValueError(f"fixed {name} must be finite, got {v!r}")
    x, _ = validate_inputs(x)
    return x, validate_targets(y, x.shape[0])


def sample_hyperparameters(
    x: ArrayLike,
    y: ArrayLike,
    *,
    depth: int = 1,
    activation: str = "relu",
    scale: Scale = "integrated",
    concentration: float = 2.0,
    rate: float = 1.0,
    fixed: dict[str, float] | None = None,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 500,
    seed: int = 0,
    progress: bool = False,
    jitter: float = 1e-8,
    **options: Any,
) -> az.InferenceData:
    """Sample the posterior of the hyperparameters (and the scale) with NUTS, in float64.

    Args:
        x: Training inputs, shape ``(n, d)``.
        y: Training targets, shape ``(n,)`` or ``(n, c)``.
        depth: Hidden layers of the network.
        activation: ``"relu"`` or ``"erf"``.
        scale: ``"integrated"`` (closed form) or ``"sampled"`` (``log_scale`` sampled).
        concentration: Inverse-gamma prior shape ``a > 0`` of the scale.
        rate: Inverse-gamma prior rate ``b > 0``.
        fixed: Log values of some :data:`HYPERPARAMETERS` to hold fixed.
        num_chains: NUTS chains.
        num_warmup: Warmup steps per chain.
        num_samples: Kept draws per chain.
        seed: Seed of the run.
        progress: Show the sampler's progress bar.
        jitter: Relative diagonal jitter.
        **options: Passed to :func:`bayes.sample` (``target_acceptance_rate``, ...).
            ``dense_mass`` defaults to ``False`` here, the diagonal metric the
            study in docs/nngp.md was run with.

    Returns:
        ``arviz.InferenceData`` of :func:`bayes.sample`; its posterior holds the sampled
            log values, shape ``(num_chains, num_samples)`` each.

    Raises:
        ValueError: Bad inputs, targets, prior parameters or fixed values.
    """
    import bayes

    _check_scale(scale)
    options.setdefault("dense_mass", False)
    fixed = {k: float(v) for k, v in (fixed or {}).items()}
    with jax.enable_x64(True):
        x, y = _validated(x, y, depth, activation, concentration, rate, fixed)
        start = _initial_position(scale, fixed)
        if not start:
            raise ValueError("nothing to sample: every hyperparameter is fixed and s is integrated")
        data = dict(
            x=np.asarray(x), y=np.asarray(y), depth=int(depth), activation=activation,
            concentration=float(concentration), rate=float(rate), jitter=float(jitter), **fixed,
        )  # fmt: skip
        # every gradient factorizes an n x n matrix with n in the tens to hundreds: BLAS
        # threads only spin there (5-10x slower gradients at n = 100 on a loaded machine)
        with serial_blas():
            return bayes.sample(
                hyperparameter_logdensity, data, method="nuts", num_chains=num_chains,
                num_warmup=num_warmup, num_samples=num_samples, seed=seed, progress=progress,
                initial_position=start, **options,
            )  # fmt: skip


def _draw_predict(theta, x, y, x_test, y_test, depth, activation, a, b, jitter, sampled):
    fit, kw = _fit(theta, x, y, depth, activation, jitter)
    kc, kd = kernel_matrix(x, x_test, **kw), kernel_diag(x_test, **kw)
    if sampled:
        mean, var = gaussian_predict(fit, kc, kd, scale=jnp.exp(theta["log_scale"]))
        return mean, var, _normal_logpdf(y_test, mean, var)
    pred = student_t_predict(fit, kc, kd, concentration=a, rate=b)
    return pred.loc, pred.variance, _t_logpdf(y_test, pred)


def hmc_predict(
    idata: az.InferenceData,
    x: ArrayLike,
    y: ArrayLike,
    x_test: ArrayLike,
    y_test: ArrayLike | None = None,
    *,
    depth: int = 1,
    activation: str = "relu",
    concentration: float = 2.0,
    rate: float = 1.0,
    fixed: dict[str, float] | None = None,
    jitter: float = 1e-8,
) -> HMCPredictive:
    """Posterior predictive of the draws of :func:`sample_hyperparameters`.

    Each draw ``theta_k`` gives the Gaussian (sampled scale) or Student-t (integrated
    scale) predictive of its kernel; the predictive is their equal-weight mixture,
    computed in float64 one draw after another. (Batching the draws with ``vmap`` made
    jaxlib 0.10's batched LAPACK kernels deadlock on 2 cores; see ``bayes._xla``.)

    Args:
        idata: Output of :func:`sample_hyperparameters` (the same ``fixed``, prior and
            architecture must be passed here).
        x: Training inputs, shape ``(n, d)``.
        y: Training targets, shape ``(n,)`` or ``(n, c)``.
        x_test: Test inputs, shape ``(m, d)``.
        y_test: Optional test targets, shape ``(m,)`` or ``(m, c)``.
        depth: Hidden layers of the network.
        activation: ``"relu"`` or ``"erf"``.
        concentration: Inverse-gamma prior shape ``a`` of the scale.
        rate: Inverse-gamma prior rate ``b``.
        fixed: Log values of the hyperparameters held fixed while sampling.
        jitter: Relative diagonal jitter.

    Returns:
        The predictive, as an :class:`HMCPredictive`.

    Raises:
        ValueError: Bad inputs, or a posterior that lacks a sampled hyperparameter.
    """
    fixed = {k: float(v) for k, v in (fixed or {}).items()}
    post = idata.posterior
    names = [n for n in (*HYPERPARAMETERS, "log_scale") if n in post]
    missing = [n for n in HYPERPARAMETERS if n not in post and n not in fixed]
    if missing:
        raise ValueError(f"the posterior has no draws of {missing} and they are not fixed")
    draws = {n: np.asarray(post[n], np.float64).reshape(-1) for n in names}
    sampled = "log_scale" in draws
    with jax.enable_x64(True), serial_blas():
        x, y = _validated(x, y, depth, activation, concentration, rate, fixed)
        _, x_test = validate_inputs(x, x_test)
        yt = jnp.zeros((x_test.shape[0], y.shape[1])) if y_test is None else y_test
        yt = validate_targets(yt, x_test.shape[0])
        if yt.shape[1] != y.shape[1]:
            raise ValueError(f"y_test has {yt.shape[1]} outputs, y has {y.shape[1]}")
        mix_mean, mix_var, log_density, logd = _mixture_predict(
            {n: jnp.asarray(v) for n, v in draws.items()},
            {n: jnp.asarray(v) for n, v in fixed.items()},
            x, y, x_test, yt, concentration, rate, jitter,
            depth=depth, activation=activation, sampled=sampled,
        )  # fmt: skip
        if y_test is None:
            return HMCPredictive(mix_mean, mix_var, None, None)
        return HMCPredictive(mix_mean, mix_var, log_density, logd)


@partial(jax.jit, static_argnames=("depth", "activation", "sampled"))
def _mixture_predict(
    draws, fixed, x, y, x_test, y_test, a, b, jitter, *, depth, activation, sampled
):
    # one draw per step, unbatched: two independent batched triangular solves (the fit's
    # and the cross-covariance's) deadlocked jaxlib 0.10's 2-thread pool (bayes._xla)
    mean, var, logd = jax.lax.map(
        lambda d: _draw_predict(
            {**fixed, **d}, x, y, x_test, y_test, depth, activation, a, b, jitter, sampled
        ),
        draws,
    )
    # law of total variance over the equal-weight mixture of draws
    mix_var = var.mean(0)[:, None] + mean.var(0)
    log_density = logsumexp(logd, axis=0) - jnp.log(logd.shape[0])
    return mean.mean(0), mix_var, log_density, logd
