"""General priors on the readout scale: importance sampling and quadrature.

With any prior density ``p(s)`` on the scale ``s > 0`` of the last layer, the
posterior of ``s`` given the training data (see :mod:`bayes.models.nngp.gp`) is

.. math::

    p(s \\mid Y) \\propto p(s)\\, s^{-nc/2} \\exp\\!\\left(-\\frac{Q}{2 s}\\right),

and the predictive of a test row is the scale mixture
``int N(y_*; mu, s v I_c) p(s | Y) ds``: the location ``mu`` and the unit
variance ``v`` are those of the Gaussian case, only the scale is integrated.
The integral is one-dimensional and is done here on ``u = log s`` by

* **quadrature** (:func:`scale_posterior_quadrature`): trapezoidal rule on a
  grid that is first laid wide and then refined over the region holding the
  posterior mass, accurate to ~1e-8 for smooth priors;
* **self-normalized importance sampling** (:func:`scale_posterior_importance`)
  with a likelihood-shaped proposal: a logistic density on ``u`` centred at the
  likelihood mode ``log(Q / nc)`` with ``inflation`` times the likelihood's
  standard deviation ``sqrt(2 / nc)``. Its tails are heavier than the
  posterior's, so the weights stay bounded. Stratified uniforms (default) make
  the error ``O(1/N)`` instead of ``O(1/sqrt N)``. The effective sample size is
  reported and a :class:`LowEffectiveSampleSizeWarning` is raised when it falls
  below ``min_ess_fraction`` of the draws (the prior then disagrees with the
  likelihood, which is where the prior-as-proposal scheme fails outright).

Priors are NumPyro distributions on ``s`` (anything with ``log_prob``) or a
user function ``log_prob(s)``. :class:`BurrXII` and
:func:`half_cauchy_on_std` complete NumPyro's ``InverseGamma`` and
``LogNormal``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax import lax
from jax.scipy.special import logsumexp
from jax.tree_util import Partial
from numpyro.distributions import constraints

from .gp import GPFit, validate_targets

if TYPE_CHECKING:
    from jax.typing import ArrayLike

__all__ = [
    "BurrXII",
    "LowEffectiveSampleSizeWarning",
    "ScalePosterior",
    "half_cauchy_on_std",
    "mixture_log_predictive",
    "mixture_predictive_variance",
    "scale_log_likelihood",
    "scale_log_marginal_likelihood",
    "scale_posterior_importance",
    "scale_posterior_quadrature",
]

_LOG_2PI = float(np.log(2 * np.pi))


class LowEffectiveSampleSizeWarning(UserWarning):
    """Importance weights degenerate: few draws carry the posterior of the scale."""


class BurrXII(dist.Distribution):
    """Burr type XII distribution on ``s > 0``.

    Density ``p(s) = (c k / lam) (s/lam)^{c-1} (1 + (s/lam)^c)^{-(k+1)}``; its right tail
    decays like ``s^{-(ck+1)}``.

    Args:
        c: First shape parameter, ``c > 0``.
        k: Second shape parameter, ``k > 0``.
        scale: Scale ``lam > 0``.
    """

    arg_constraints: ClassVar[dict] = {
        "c": constraints.positive,
        "k": constraints.positive,
        "scale": constraints.positive,
    }
    support = constraints.positive
    reparametrized_params: ClassVar[list] = ["c", "k", "scale"]

    def __init__(
        self,
        c: ArrayLike = 1.0,
        k: ArrayLike = 1.0,
        scale: ArrayLike = 1.0,
        *,
        validate_args: bool | None = None,
    ) -> None:
        self.c, self.k, self.scale = jnp.broadcast_arrays(
            jnp.asarray(c, jnp.result_type(float)), jnp.asarray(k), jnp.asarray(scale)
        )
        super().__init__(batch_shape=jnp.shape(self.c), validate_args=validate_args)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        z = value / self.scale
        return (
            jnp.log(self.c)
            + jnp.log(self.k)
            - jnp.log(self.scale)
            + (self.c - 1) * jnp.log(z)
            - (self.k + 1) * jnp.log1p(z**self.c)
        )

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        shape = sample_shape + self.batch_shape
        u = jax.random.uniform(key, shape, minval=jnp.finfo(self.c.dtype).tiny)
        # inverse CDF: F(s) = 1 - (1 + (s/lam)^c)^{-k}
        return self.scale * jnp.expm1(-jnp.log(u) / self.k) ** (1 / self.c)


def half_cauchy_on_std(scale: float = 1.0) -> dist.Distribution:
    """Prior on the variance ``s = sigma^2`` induced by ``sigma ~ HalfCauchy(scale)``."""
    return dist.TransformedDistribution(dist.HalfCauchy(scale), dist.transforms.PowerTransform(2.0))


def _call_log_prob(prior, s):
    return prior.log_prob(s)


def _log_prior_fn(prior: Any) -> Callable[[jax.Array], jax.Array]:
    # a Partial is a pytree: distributions travel as traced leaves, functions as static data
    if hasattr(prior, "log_prob"):
        return Partial(_call_log_prob, prior)
    if callable(prior):
        return Partial(prior)
    raise TypeError(
        "prior must be a distribution on the scale (with .log_prob) or a function "
        f"log_prob(s), got {type(prior).__name__}"
    )


def scale_log_likelihood(fit: GPFit, scale: ArrayLike) -> jax.Array:
    """``log p(Y | s) = -(nc/2) log(2 pi s) - (c/2) log|A| - Q/(2s)``, same shape as ``scale``."""
    n, c = fit.num_data, fit.num_outputs
    return -0.5 * (n * c * (_LOG_2PI + jnp.log(scale)) + c * fit.logdet + fit.quad / scale)


class ScalePosterior(NamedTuple):
    """Weighted points ``u_i = log s_i`` representing ``p(s | Y)``.

    Attributes:
        log_scale: ``u_i``, shape ``(N,)``.
        log_weights: Normalized log weights (``logsumexp = 0``), shape ``(N,)``.
        log_evidence: Estimate of ``log p(Y)``, shape ``()``.
        ess: Effective sample size ``1 / sum w_i^2`` (for quadrature: of the grid weights).
    """

    log_scale: jax.Array
    log_weights: jax.Array
    log_evidence: jax.Array
    ess: jax.Array

    @property
    def mean_scale(self) -> jax.Array:
        """Posterior mean ``E[s | Y]``."""
        return jnp.sum(jnp.exp(self.log_weights + self.log_scale))


def _log_joint_u(fit: GPFit, log_prior, u):
    # density on u = log s carries the Jacobian ds/du = s
    return log_prior(jnp.exp(u)) + u + scale_log_likelihood(fit, jnp.exp(u))


def _likelihood_mode(fit: GPFit):
    nc = fit.num_data * fit.num_outputs
    return jnp.log(fit.quad / nc), jnp.sqrt(2.0 / nc)


def _trapezoid(fit, log_prior, lo, hi, num_points):
    u = jnp.linspace(lo, hi, num_points)
    logp = jnp.nan_to_num(_log_joint_u(fit, log_prior, u), nan=-jnp.inf)
    du = (hi - lo) / (num_points - 1)
    logw = (
        logp
        + jnp.log(du)
        + jnp.where((jnp.arange(num_points) % (num_points - 1)) == 0, jnp.log(0.5), 0.0)
    )
    return u, logw


def scale_posterior_quadrature(
    fit: GPFit, prior: Any, *, num_points: int = 2001, width: float = 60.0
) -> ScalePosterior:
    """Posterior of the scale on a refined trapezoidal grid in ``u = log s``.

    A first grid spans ``width`` likelihood standard deviations around the
    likelihood mode (and at least ``[-25, 25]`` around it in ``u``); a second grid
    of ``num_points`` covers the region where the first one is within ``e^-40`` of
    its maximum. The grid bounds are held constant under differentiation.

    Args:
        fit: Output of :func:`~bayes.models.nngp.gp.gp_fit`.
        prior: Distribution on ``s`` (with ``log_prob``) or a function ``log_prob(s)``.
        num_points: Points of each grid.
        width: Half-width of the first grid in likelihood standard deviations.

    Returns:
        The posterior, as a :class:`ScalePosterior` on the refined grid.
    """
    return _quadrature(fit, _log_prior_fn(prior), num_points, float(width))


@partial(jax.jit, static_argnames=("num_points", "width"))
def _quadrature(fit, log_prior, num_points, width):
    center, sd = _likelihood_mode(fit)
    center, sd = lax.stop_gradient(center), lax.stop_gradient(sd)
    half = jnp.maximum(width * sd, 25.0)
    u0, logw0 = _trapezoid(
        lax.stop_gradient(fit), log_prior, center - half, center + half, num_points
    )
    keep = logw0 > jnp.max(logw0) - 40.0
    step = u0[1] - u0[0]
    lo = jnp.min(jnp.where(keep, u0, jnp.inf)) - step
    hi = jnp.max(jnp.where(keep, u0, -jnp.inf)) + step
    u, logw = _trapezoid(fit, log_prior, lax.stop_gradient(lo), lax.stop_gradient(hi), num_points)
    log_evidence = logsumexp(logw)
    logw = logw - log_evidence
    return ScalePosterior(u, logw, log_evidence, 1.0 / jnp.sum(jnp.exp(2 * logw)))


def scale_posterior_importance(
    fit: GPFit,
    prior: Any,
    *,
    rng_key: jax.Array,
    num_samples: int = 4096,
    inflation: float = 2.0,
    stratified: bool = True,
    min_ess_fraction: float = 0.1,
    warn: bool = True,
) -> ScalePosterior:
    """Posterior of the scale by self-normalized importance sampling.

    Proposal on ``u = log s``: ``Logistic(log(Q/nc), inflation * sqrt(2/nc) * sqrt(3)/pi)``
    (its standard deviation is ``inflation`` times the likelihood's).

    Args:
        fit: Output of :func:`~bayes.models.nngp.gp.gp_fit`.
        prior: Distribution on ``s`` (with ``log_prob``) or a function ``log_prob(s)``.
        rng_key: PRNG key.
        num_samples: Number of draws ``N``.
        inflation: Proposal spread relative to the likelihood.
        stratified: One uniform in each of ``N`` equal strata (error ``O(1/N)``).
        min_ess_fraction: Warn when ``ess < min_ess_fraction * N``.
        warn: Emit the warning (only outside ``jit``).

    Returns:
        The posterior, as a :class:`ScalePosterior` with normalized weights and the ESS.
    """
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}")
    post = _importance(fit, _log_prior_fn(prior), rng_key, inflation, num_samples, stratified)
    ess = post.ess
    traced = isinstance(ess, jax.core.Tracer)
    if warn and not traced and float(ess) < min_ess_fraction * num_samples:
        warnings.warn(
            f"importance sampling of the scale: effective sample size {float(ess):.1f} of "
            f"{num_samples} draws; the prior is far from the likelihood, results are unreliable "
            "(use scale_posterior_quadrature or more samples)",
            LowEffectiveSampleSizeWarning,
            stacklevel=2,
        )
    return post


@partial(jax.jit, static_argnames=("num_samples", "stratified"))
def _importance(fit, log_prior, rng_key, inflation, num_samples, stratified):
    center, sd = _likelihood_mode(fit)
    beta = inflation * sd * jnp.sqrt(3.0) / jnp.pi
    uniform = jax.random.uniform(rng_key, (num_samples,), dtype=fit.quad.dtype)
    if stratified:
        uniform = (jnp.arange(num_samples) + uniform) / num_samples
    tiny = jnp.finfo(fit.quad.dtype).tiny
    uniform = jnp.clip(uniform, tiny, 1 - jnp.finfo(fit.quad.dtype).epsneg)
    z = jnp.log(uniform) - jnp.log1p(-uniform)
    u = center + beta * z
    log_q = -z - 2 * jnp.logaddexp(0.0, -z) - jnp.log(beta)
    logw = jnp.nan_to_num(_log_joint_u(fit, log_prior, u) - log_q, nan=-jnp.inf)
    log_evidence = logsumexp(logw) - jnp.log(num_samples)
    logw = logw - logsumexp(logw)
    ess = 1.0 / jnp.sum(jnp.exp(2 * logw))
    return ScalePosterior(u, logw, log_evidence, ess)


def scale_log_marginal_likelihood(fit: GPFit, prior: Any, **kwargs: Any) -> jax.Array:
    """``log p(Y) = log int p(s) p(Y | s) ds`` by quadrature (differentiable), shape ``()``.

    Keyword arguments go to :func:`scale_posterior_quadrature`.
    """
    return scale_posterior_quadrature(fit, prior, **kwargs).log_evidence


def mixture_log_predictive(
    y_test: ArrayLike, mean: jax.Array, unit_var: jax.Array, posterior: ScalePosterior
) -> jax.Array:
    """Log predictive density of each test row under the scale mixture.

    ``log sum_i w_i N(y_*; mean, s_i unit_var I_c)``.

    Args:
        y_test: Test targets, shape ``(m,)`` or ``(m, c)``.
        mean: Predictive location, shape ``(m, c)``.
        unit_var: Predictive variance at ``s = 1`` (noise included), shape ``(m,)``.
        posterior: Weighted scales.

    Returns:
        Log densities, shape ``(m,)``.
    """
    return _mixture_logpdf(validate_targets(y_test, mean.shape[0]), mean, unit_var, posterior)


@jax.jit
def _mixture_logpdf(y, mean, unit_var, posterior):
    c = y.shape[1]
    r2 = jnp.sum((y - mean) ** 2, axis=1)
    var = unit_var[:, None] * jnp.exp(posterior.log_scale)[None, :]
    logn = -0.5 * (c * (_LOG_2PI + jnp.log(var)) + r2[:, None] / var)
    return logsumexp(logn + posterior.log_weights[None, :], axis=1)


def mixture_predictive_variance(unit_var: jax.Array, posterior: ScalePosterior) -> jax.Array:
    """Predictive variance ``E[s | Y] unit_var`` of each output, shape ``(m,)``."""
    return posterior.mean_scale * unit_var
