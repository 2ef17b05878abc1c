"""Bootstrap and guided particle filters for a :class:`~bayes.inference.smc.ssm.StateSpaceModel`.

BlackJAX-shaped: :func:`init` and a pure :func:`step` (jit/vmap/scan-safe), and
:func:`run_filter` that scans them over the observations. With normalised
weights :math:`W_{t-1}^i` carried after (possibly skipped) resampling, the
log-likelihood increment is

.. math::

    \\log \\hat p(y_t \\mid y_{0:t-1}) = \\log \\sum_i W_{t-1}^{A^i}\\,
    \\frac{g_t(x_t^i, y_t)\\, q_t(x_{t-1}^{A^i}, x_t^i)}{p_t(x_t^i \\mid x_{t-1}^{A^i}, y_t)},

whose exponentiated product over ``t`` is an unbiased estimate of
:math:`p(y_{0:T-1})` (Del Moral 2004). The bootstrap filter is the case
``p_t = q_t``.

**Auxiliary particle filter** (Pitt & Shephard 1999). Given a look-ahead
:math:`\\eta_t(x_{t-1}) \\approx \\log p(y_t \\mid x_{t-1})` (an
``auxiliary_logweight_fn``), ancestors are resampled from the first-stage
weights :math:`V^i \\propto W_{t-1}^i e^{\\eta_t(x_{t-1}^i)}` and the
second-stage weights divide the look-ahead out again,

.. math::

    w_t^i = \\frac{g_t(x_t^i, y_t)\\, q_t(x_{t-1}^{A^i}, x_t^i)}
    {p_t(x_t^i \\mid x_{t-1}^{A^i}, y_t)\\, e^{\\eta_t(x_{t-1}^{A^i})}}, \\qquad
    \\log \\hat p(y_t \\mid y_{0:t-1}) = \\log \\sum_i W_{t-1}^i e^{\\eta_t(x_{t-1}^i)}
    + \\log \\sum_i \\bar V^{A^i} w_t^i,

with :math:`\\bar V = 1/N` after resampling and :math:`\\bar V = V` otherwise.
Conditionally on the past the second factor has mean
:math:`\\sum_i W_{t-1}^i p(y_t \\mid x_{t-1}^i) / \\sum_i W_{t-1}^i e^{\\eta_t(x_{t-1}^i)}`,
so the likelihood estimate stays unbiased (Johansen & Doucet 2008). With
:math:`\\eta_t = \\log p(y_t \\mid x_{t-1})` and the locally optimal proposal
the filter is *fully adapted*: every :math:`w_t^i` is one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from bayes.inference.smc._rng import loop_key
from bayes.inference.smc.resampling import ess, get_scheme
from bayes.inference.smc.ssm import (
    AuxiliaryLogweightFn,
    Proposal,
    StateSpaceModel,
    check_observations,
    check_positive,
)
from jax import Array

__all__ = [
    "FilterInfo",
    "FilterOutput",
    "FilterState",
    "init",
    "lookahead_logweight",
    "run_filter",
    "step",
]


class FilterState(NamedTuple):
    """Particle approximation of the filter at one time.

    Attributes:
        particles: States, shape ``(N, *state_shape)``.
        log_weights: Normalised log-weights, shape ``(N,)`` (``logsumexp == 0``).
        log_likelihood: Running log-likelihood estimate, scalar.
    """

    particles: Array
    log_weights: Array
    log_likelihood: Array


class FilterInfo(NamedTuple):
    """Per-step diagnostics: ``ancestors`` ``(N,)``, ``ess`` (before resampling; of
    the first-stage weights in an auxiliary filter), ``resampled`` (bool) and the
    ``log_likelihood_increment``."""

    ancestors: Array
    ess: Array
    resampled: Array
    log_likelihood_increment: Array


class FilterOutput(NamedTuple):
    """Result of :func:`run_filter`.

    Attributes:
        log_likelihood: Estimate of :math:`\\log p(y_{0:T-1})`, scalar.
        filtering_mean: Weighted means of the states, shape ``(T, *state_shape)``.
        filtering_var: Weighted variances (elementwise), shape ``(T, *state_shape)``.
        ess: Effective sample sizes before resampling, shape ``(T,)``.
        particles: History ``(T, N, *state_shape)`` or ``None``.
        log_weights: History ``(T, N)`` or ``None``.
        ancestors: Genealogy ``(T, N)`` (row ``t`` indexes time ``t-1``;
            row 0 is ``arange(N)``) or ``None``.
    """

    log_likelihood: Array
    filtering_mean: Array
    filtering_var: Array
    ess: Array
    particles: Array | None = None
    log_weights: Array | None = None
    ancestors: Array | None = None


def _weigh(log_weights: Array) -> tuple[Array, Array]:
    lse = jax.nn.logsumexp(log_weights)
    return log_weights - lse, lse


def init(
    rng_key: Array,
    model: StateSpaceModel,
    theta: Any,
    y0: Array,
    num_particles: int,
    proposal: Proposal | None = None,
) -> FilterState:
    """Sample and weigh ``num_particles`` initial states given the first observation ``y0``."""
    keys = jax.random.split(rng_key, num_particles)
    if proposal is None:
        x = jax.vmap(model.initial_sampler, in_axes=(0, None))(keys, theta)
        log_w = jnp.zeros(num_particles)
    else:
        x = jax.vmap(proposal.initial_sampler, in_axes=(0, None, None))(keys, y0, theta)
        log_w = jax.vmap(model.initial_logdensity, in_axes=(0, None))(x, theta) - jax.vmap(
            proposal.initial_logdensity, in_axes=(0, None, None)
        )(x, y0, theta)
    log_w = log_w + jax.vmap(model.observation_logdensity, in_axes=(0, None, None, None))(
        x, y0, 0, theta
    )
    log_w = log_w - jnp.log(num_particles)
    log_w, increment = _weigh(log_w)
    return FilterState(x, log_w, increment)


def step(
    rng_key: Array,
    state: FilterState,
    model: StateSpaceModel,
    theta: Any,
    y: Array,
    t: Array | int,
    *,
    resampling: str = "systematic",
    ess_threshold: float = 1.0,
    proposal: Proposal | None = None,
    auxiliary_logweight_fn: AuxiliaryLogweightFn | None = None,
) -> tuple[FilterState, FilterInfo]:
    """One resample-propagate-weigh step to time ``t`` with observation ``y``.

    Args:
        rng_key: PRNG key.
        state: Filter at time ``t - 1``.
        model: The state-space model.
        theta: Model parameters (pytree).
        y: Observation at time ``t``, shape ``obs_shape``.
        t: Integer time of the new state.
        resampling: Scheme name (``multinomial``, ``stratified``, ``systematic``, ``residual``).
        ess_threshold: Resample when ``ESS < ess_threshold * N``; ``>= 1`` always resamples.
        proposal: Optional guided proposal; ``None`` uses the dynamics (bootstrap).
        auxiliary_logweight_fn: Optional look-ahead
            :math:`\\eta_t(x_{t-1})` (auxiliary particle filter); ``None``: zero.

    Returns:
        ``(new_state, info)``.
    """
    n = state.log_weights.shape[0]
    scheme, _ = get_scheme(resampling)
    k_res, k_move = jax.random.split(rng_key)
    if auxiliary_logweight_fn is None:
        first_stage, log_norm = state.log_weights, jnp.zeros(())
        eta = jnp.zeros(n)
    else:
        eta = jax.vmap(auxiliary_logweight_fn, in_axes=(0, None, None, None))(
            state.particles, y, t, theta
        )
        first_stage, log_norm = _weigh(state.log_weights + eta)
    current_ess = ess(first_stage)
    if ess_threshold >= 1.0:
        do_resample = jnp.asarray(True)
    else:
        do_resample = current_ess < ess_threshold * n
    resampled_idx = scheme(k_res, jnp.exp(first_stage), n)
    ancestors = jnp.where(do_resample, resampled_idx, jnp.arange(n, dtype=jnp.int32))
    log_prev = jnp.where(do_resample, -jnp.log(n) * jnp.ones(n), first_stage)
    # Second-stage weights divide the look-ahead of each particle's ancestor out.
    log_prev = log_prev - eta[ancestors]
    x_prev = state.particles[ancestors]
    keys = jax.random.split(k_move, n)
    if proposal is None:
        x = jax.vmap(model.transition_sampler, in_axes=(0, 0, None, None))(keys, x_prev, t, theta)
        log_inc = jnp.zeros(n)
    else:
        x = jax.vmap(proposal.sampler, in_axes=(0, 0, None, None, None))(keys, x_prev, y, t, theta)
        log_inc = jax.vmap(model.transition_logdensity, in_axes=(0, 0, None, None))(
            x_prev, x, t, theta
        ) - jax.vmap(proposal.logdensity, in_axes=(0, 0, None, None, None))(x_prev, x, y, t, theta)
    log_inc = log_inc + jax.vmap(model.observation_logdensity, in_axes=(0, None, None, None))(
        x, y, t, theta
    )
    log_w, increment = _weigh(log_prev + log_inc)
    increment = increment + log_norm
    new_state = FilterState(x, log_w, state.log_likelihood + increment)
    return new_state, FilterInfo(ancestors, current_ess, do_resample, increment)


def lookahead_logweight(
    model: StateSpaceModel, predict_fn: Callable[[Array, Array, Any], Array]
) -> AuxiliaryLogweightFn:
    """Pitt & Shephard's look-ahead: the observation density at a point prediction.

    Args:
        model: The state-space model.
        predict_fn: ``(x_prev, t, theta) -> x`` a point prediction of
            :math:`X_t` (for example the transition mean), shape ``state_shape``.

    Returns:
        ``(x_prev, y, t, theta) -> log g_t(predict_fn(x_prev, t, theta), y)``.
    """

    def logweight(x_prev: Array, y: Array, t: Array, theta: Any) -> Array:
        return model.observation_logdensity(predict_fn(x_prev, t, theta), y, t, theta)

    return logweight


def _moments(state: FilterState) -> tuple[Array, Array]:
    w = jnp.exp(state.log_weights).reshape((-1,) + (1,) * (state.particles.ndim - 1))
    mean = jnp.sum(w * state.particles, axis=0)
    var = jnp.sum(w * (state.particles - mean) ** 2, axis=0)
    return mean, var


def run_filter(
    model: StateSpaceModel,
    theta: Any,
    observations: Array,
    *,
    rng_key: Array,
    num_particles: int,
    resampling: str = "systematic",
    ess_threshold: float = 1.0,
    proposal: Proposal | None = None,
    auxiliary_logweight_fn: AuxiliaryLogweightFn | None = None,
    store_history: bool = False,
) -> FilterOutput:
    """Run a bootstrap, guided or auxiliary particle filter over ``observations``.

    Memory is independent of ``T`` unless ``store_history`` is set. Wrap in
    ``jax.jit`` with ``num_particles``, ``resampling``, ``ess_threshold`` and
    ``store_history`` static (or call it inside a jitted function).

    Args:
        model: The state-space model.
        theta: Parameters (pytree).
        observations: Shape ``(T, *obs_shape)``, finite.
        rng_key: PRNG key; the time loop draws from a Philox-4x32 key derived
            from it (see ``bayes.inference.smc._rng``).
        num_particles: ``N >= 2``.
        resampling: Scheme name.
        ess_threshold: Adaptive resampling threshold (fraction of ``N``).
        proposal: Optional guided proposal.
        auxiliary_logweight_fn: Optional look-ahead
            ``(x_prev, y, t, theta) -> eta`` (auxiliary particle filter), e.g.
            :func:`lookahead_logweight`.
        store_history: Keep particles, weights and ancestors for every time.

    Returns:
        The filter output, as a :class:`FilterOutput`.

    Raises:
        ValueError: For ``num_particles < 2``, a bad scheme name or non-finite observations.
    """
    check_positive("num_particles", num_particles, 2)
    get_scheme(resampling)
    ys = check_observations(observations)
    k0, k_rest = jax.random.split(loop_key(rng_key))
    state = init(k0, model, theta, ys[0], num_particles, proposal)
    times = jnp.arange(1, ys.shape[0])
    keys = jax.random.split(k_rest, ys.shape[0] - 1)

    def body(carry, inputs):
        key, y, t = inputs
        new, info = step(
            key,
            carry,
            model,
            theta,
            y,
            t,
            resampling=resampling,
            ess_threshold=ess_threshold,
            proposal=proposal,
            auxiliary_logweight_fn=auxiliary_logweight_fn,
        )
        mean, var = _moments(new)
        extra = (new.particles, new.log_weights, info.ancestors) if store_history else ()
        return new, (mean, var, info.ess, extra)

    final, (means, vars_, esses, extra) = jax.lax.scan(body, state, (keys, ys[1:], times))
    m0, v0 = _moments(state)
    means = jnp.concatenate([m0[None], means])
    vars_ = jnp.concatenate([v0[None], vars_])
    esses = jnp.concatenate([ess(state.log_weights)[None], esses])
    out = FilterOutput(final.log_likelihood, means, vars_, esses)
    if store_history:
        parts, logw, anc = extra
        out = out._replace(
            particles=jnp.concatenate([state.particles[None], parts]),
            log_weights=jnp.concatenate([state.log_weights[None], logw]),
            ancestors=jnp.concatenate([jnp.arange(num_particles, dtype=jnp.int32)[None], anc]),
        )
    return out
