"""Stochastic volatility and the nonlinear growth model in the SSM contract.

Stochastic volatility (states and observations of shape ``(1,)``),
``theta = {"mu", "atanh_phi", "log_sigma"}`` with :math:`\\phi = \\tanh(\\text{atanh\\_phi})`
and :math:`\\sigma = e^{\\text{log\\_sigma}}`, all unconstrained (the stationary
initial law exists for every ``theta``):

.. math::

    X_0 \\sim \\mathcal N\\big(\\mu, \\sigma^2/(1-\\phi^2)\\big), \\quad
    X_t = \\mu + \\phi (X_{t-1} - \\mu) + \\sigma \\varepsilon_t, \\quad
    Y_t \\mid X_t \\sim \\mathcal N(0, e^{X_t}).

Nonlinear growth model (Kitagawa 1996), ``theta = {"log_sigma_x", "log_sigma_y"}``:

.. math::

    X_t = \\frac{X_{t-1}}2 + \\frac{25 X_{t-1}}{1 + X_{t-1}^2} + 8\\cos(1.2 t)
    + \\sigma_x \\varepsilon_t, \\quad Y_t = \\frac{X_t^2}{20} + \\sigma_y \\eta_t,
    \\quad X_0 \\sim \\mathcal N(0, 5).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from bayes.inference.smc.ssm import StateSpaceModel
from jax import Array

__all__ = ["growth_model", "simulate_ssm", "stochastic_volatility"]


def _norm(x: Array, mean: Array, sd: Array) -> Array:
    return jnp.sum(jax.scipy.stats.norm.logpdf(x, mean, sd))


def stochastic_volatility() -> StateSpaceModel:
    """The stochastic volatility model (see the module docstring)."""

    def sd0(theta):
        # sigma / sqrt(1 - tanh(z)^2) = sigma cosh(z), without cancellation near |phi| = 1.
        return jnp.exp(theta["log_sigma"]) * jnp.cosh(theta["atanh_phi"])

    def mean(x_prev, theta):
        return theta["mu"] + jnp.tanh(theta["atanh_phi"]) * (x_prev - theta["mu"])

    def bound(t, theta):
        return -theta["log_sigma"] - 0.5 * jnp.log(2 * jnp.pi)

    return StateSpaceModel(
        lambda key, th: th["mu"] + sd0(th) * jax.random.normal(key, (1,)),
        lambda x, th: _norm(x, th["mu"], sd0(th)),
        lambda key, xp, t, th: (
            mean(xp, th) + jnp.exp(th["log_sigma"]) * jax.random.normal(key, (1,))
        ),
        lambda xp, x, t, th: _norm(x, mean(xp, th), jnp.exp(th["log_sigma"])),
        lambda x, y, t, th: _norm(y, 0.0, jnp.exp(0.5 * x)),
        bound,
    )


def growth_model() -> StateSpaceModel:
    """The nonlinear growth model (see the module docstring)."""

    def mean(x_prev, t):
        return x_prev / 2 + 25 * x_prev / (1 + x_prev**2) + 8 * jnp.cos(1.2 * t)

    def bound(t, theta):
        return -theta["log_sigma_x"] - 0.5 * jnp.log(2 * jnp.pi)

    sd0 = jnp.sqrt(5.0)
    return StateSpaceModel(
        lambda key, th: sd0 * jax.random.normal(key, (1,)),
        lambda x, th: _norm(x, 0.0, sd0),
        lambda key, xp, t, th: (
            mean(xp, t) + jnp.exp(th["log_sigma_x"]) * jax.random.normal(key, (1,))
        ),
        lambda xp, x, t, th: _norm(x, mean(xp, t), jnp.exp(th["log_sigma_x"])),
        lambda x, y, t, th: _norm(y, x**2 / 20, jnp.exp(th["log_sigma_y"])),
        bound,
    )


def simulate_ssm(
    rng_key: Array,
    model: StateSpaceModel,
    theta: Any,
    num_steps: int,
    observation_sampler: Any,
) -> tuple[Array, Array]:
    """Simulate ``(states (T, ...), observations (T, ...))`` from any SSM.

    Args:
        observation_sampler: ``(rng_key, x, t, theta) -> y`` (the contract only
            needs the observation log-density, so sampling is passed in).
    """
    k0, k_x, k_y = jax.random.split(rng_key, 3)
    x0 = model.initial_sampler(k0, theta)

    def body(x_prev, inputs):
        key, t = inputs
        x = model.transition_sampler(key, x_prev, t, theta)
        return x, x

    times = jnp.arange(1, num_steps)
    _, xs = jax.lax.scan(body, x0, (jax.random.split(k_x, num_steps - 1), times))
    xs = jnp.concatenate([x0[None], xs])
    ys = jax.vmap(observation_sampler, in_axes=(0, 0, 0, None))(
        jax.random.split(k_y, num_steps), xs, jnp.arange(num_steps), theta
    )
    return xs, ys
