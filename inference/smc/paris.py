"""PaRIS: the particle-based rapid incremental smoother (Olsson & Westerborn 2017).

Estimates smoothed expectations of additive functionals

.. math::

    H(x_{0:T-1}) = h_0(x_0) + \\sum_{t=1}^{T-1} h_t(x_{t-1}, x_t)

online, with memory independent of ``T``. Each particle carries a statistic
:math:`\\tau_t^i \\approx \\mathbb E[H_t \\mid X_t = x_t^i, y_{0:t}]` updated with
``K`` backward draws :math:`J^{i,1:K}` from the backward kernel
(:mod:`~bayes.inference.smc.backward`):

.. math::

    \\tau_t^i = \\frac1K \\sum_{k=1}^K \\left(\\tau_{t-1}^{J^{i,k}}
    + h_t(x_{t-1}^{J^{i,k}}, x_t^i)\\right), \\qquad
    \\widehat{\\mathbb E}[H \\mid y] = \\sum_i W_{T-1}^i \\tau_{T-1}^i.

The filter is the bootstrap filter resampling at every step; with MCMC
backward draws the ancestors of the sorted schemes (all but multinomial) are
shuffled so that each one is marginally ``W``-distributed. Statistics are
pytrees with a leading particle axis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from bayes.inference.smc._rng import loop_key
from bayes.inference.smc.backward import exact_draws, mcmc_draws, rejection_draws
from bayes.inference.smc.resampling import from_uniforms, get_scheme
from bayes.inference.smc.ssm import StateSpaceModel, check_observations, check_positive
from jax import Array

__all__ = [
    "BACKWARD_METHODS",
    "ParisInfo",
    "ParisOutput",
    "ParisState",
    "backward_update",
    "estimate",
    "init",
    "run_paris",
    "step",
    "zero_initial_fn",
]

BACKWARD_METHODS = ("exact", "rejection", "mcmc")

AdditiveFn = Callable[[Array, Array, Array], Any]
InitialFn = Callable[[Array], Any]


class ParisState(NamedTuple):
    """Particles ``(N, *state_shape)``, normalised ``log_weights`` ``(N,)``,
    statistics ``stats`` (pytree, leading axis ``N``) and the running
    ``log_likelihood`` of the bootstrap filter."""

    particles: Array
    log_weights: Array
    stats: Any
    log_likelihood: Array


class ParisInfo(NamedTuple):
    """``ancestors`` ``(N,)`` and ``backward_indices`` ``(N, K)`` of the step."""

    ancestors: Array
    backward_indices: Array


class ParisOutput(NamedTuple):
    """``estimate`` (pytree shaped like one statistic) and ``log_likelihood``."""

    estimate: Any
    log_likelihood: Array


def zero_initial_fn(additive_fn: AdditiveFn, x0: Array) -> Any:
    """Zeros shaped like ``additive_fn(x0, x0, 1)`` (the default :math:`h_0`)."""
    return jax.tree.map(jnp.zeros_like, additive_fn(x0, x0, jnp.asarray(1)))


def validate(num_particles: int, num_backward: int, backward: str, model: StateSpaceModel) -> None:
    """Raise ``ValueError`` for ``N < 2``, ``K < 1`` or an unusable backward method."""
    check_positive("num_particles", num_particles, 2)
    check_positive("num_backward", num_backward, 1)
    if backward not in BACKWARD_METHODS:
        raise ValueError(f"unknown backward method {backward!r} (known: {BACKWARD_METHODS})")
    if backward == "rejection" and model.transition_logdensity_bound is None:
        raise ValueError(
            "backward='rejection' needs model.transition_logdensity_bound; use 'mcmc' or 'exact'"
        )


def init(
    rng_key: Array,
    model: StateSpaceModel,
    theta: Any,
    y0: Array,
    num_particles: int,
    additive_fn: AdditiveFn,
    initial_fn: InitialFn | None = None,
) -> ParisState:
    """Initial particles, weights and statistics :math:`\\tau_0^i = h_0(x_0^i)`."""
    x = jax.vmap(model.initial_sampler, in_axes=(0, None))(
        jax.random.split(rng_key, num_particles), theta
    )
    log_g = jax.vmap(model.observation_logdensity, in_axes=(0, None, None, None))(x, y0, 0, theta)
    lse = jax.nn.logsumexp(log_g)
    h0 = initial_fn if initial_fn is not None else (lambda x0: zero_initial_fn(additive_fn, x0))
    stats = jax.vmap(h0)(x)
    return ParisState(x, log_g - lse, stats, lse - jnp.log(num_particles))


def backward_update(
    rng_key: Array,
    model: StateSpaceModel,
    theta: Any,
    t: Array | int,
    x_prev: Array,
    log_weights_prev: Array,
    stats_prev: Any,
    x_new: Array,
    ancestors: Array,
    additive_fn: AdditiveFn,
    *,
    num_backward: int,
    backward: str = "exact",
    num_mcmc_steps: int = 1,
    max_trials: int = 16,
    draws: Array | None = None,
) -> tuple[Any, Array]:
    """Draw backward indices ``(N, K)`` and update the statistics (the PaRIS step).

    ``draws``: optional uniforms ``(N, K)`` for exact backward draws (see
    :func:`~bayes.inference.smc.backward.exact_draws`); other methods ignore them.

    Returns:
        ``(stats_new, backward_indices)``.
    """

    def log_q(xp: Array, xn: Array) -> Array:
        return model.transition_logdensity(xp, xn, t, theta)

    if backward == "exact":
        idx = exact_draws(
            rng_key, log_q, x_prev, log_weights_prev, x_new, num_backward, ancestors, draws=draws
        )
    elif backward == "rejection":
        bound = model.transition_logdensity_bound(t, theta)
        idx = rejection_draws(
            rng_key, log_q, bound, x_prev, log_weights_prev, x_new, num_backward, max_trials
        )
    else:
        idx = mcmc_draws(
            rng_key, log_q, x_prev, log_weights_prev, x_new, ancestors, num_backward, num_mcmc_steps
        )
    h = jax.vmap(
        jax.vmap(lambda j, xn: additive_fn(x_prev[j], xn, t), in_axes=(0, None)), in_axes=(0, 0)
    )(idx, x_new)
    stats = jax.tree.map(lambda s, hh: jnp.mean(s[idx] + hh, axis=1), stats_prev, h)
    return stats, idx


def step(
    rng_key: Array,
    state: ParisState,
    model: StateSpaceModel,
    theta: Any,
    y: Array,
    t: Array | int,
    additive_fn: AdditiveFn,
    *,
    num_backward: int = 2,
    backward: str = "exact",
    resampling: str = "multinomial",
    num_mcmc_steps: int = 1,
    max_trials: int = 16,
    draws: tuple[Array, Array] | None = None,
) -> tuple[ParisState, ParisInfo]:
    """One bootstrap-filter step to time ``t`` followed by the PaRIS update.

    ``draws``: optional i.i.d. ``Uniform[0, 1)`` variates ``(u_resampling,
    u_backward)`` of shapes ``(N,)`` and ``(N, K)`` used instead of drawing them
    from ``rng_key`` (``u_backward`` only for exact backward draws; see
    :func:`run_paris`). The law of the step is the same either way.
    """
    n = state.log_weights.shape[0]
    scheme, _ = get_scheme(resampling)
    # One split for all the step's keys: each split is a separate kernel on CPU.
    keys = jax.random.split(rng_key, n + 2)
    k_move, k_res, k_back = keys[:n], keys[n], keys[n + 1]
    if draws is None:
        ancestors = scheme(k_res, jnp.exp(state.log_weights), n)
        u_back = None
    else:
        ancestors = from_uniforms(resampling, draws[0], jnp.exp(state.log_weights))
        u_back = draws[1]
    if backward == "mcmc" and resampling != "multinomial":
        # MH backward draws start at the ancestor, which must be marginally W-distributed:
        # true of i.i.d. multinomial draws, not of the sorted output of the other schemes.
        # Exact and rejection draws ignore the particle order, so they skip the shuffle
        # (a sort, a third of an N=100 step on CPU).
        ancestors = jax.random.permutation(jax.random.fold_in(k_res, 1), ancestors)
    x = jax.vmap(model.transition_sampler, in_axes=(0, 0, None, None))(
        k_move, state.particles[ancestors], t, theta
    )
    log_g = jax.vmap(model.observation_logdensity, in_axes=(0, None, None, None))(x, y, t, theta)
    lse = jax.nn.logsumexp(log_g)
    stats, idx = backward_update(
        k_back,
        model,
        theta,
        t,
        state.particles,
        state.log_weights,
        state.stats,
        x,
        ancestors,
        additive_fn,
        num_backward=num_backward,
        backward=backward,
        num_mcmc_steps=num_mcmc_steps,
        max_trials=max_trials,
        draws=u_back,
    )
    new = ParisState(x, log_g - lse, stats, state.log_likelihood + lse - jnp.log(n))
    return new, ParisInfo(ancestors, idx)


def estimate(state: ParisState) -> Any:
    """:math:`\\sum_i W^i \\tau^i` for the current state."""
    w = jnp.exp(state.log_weights)
    return jax.tree.map(lambda s: jnp.tensordot(w, s, axes=1), state.stats)


def run_paris(
    model: StateSpaceModel,
    theta: Any,
    observations: Array,
    additive_fn: AdditiveFn,
    *,
    rng_key: Array,
    num_particles: int,
    num_backward: int = 2,
    backward: str = "exact",
    initial_fn: InitialFn | None = None,
    resampling: str = "multinomial",
    num_mcmc_steps: int = 1,
    max_trials: int = 16,
) -> ParisOutput:
    """Smoothed expectation of an additive functional by PaRIS.

    Args:
        model: The state-space model.
        theta: Parameters (pytree).
        observations: Shape ``(T, *obs_shape)``.
        additive_fn: :math:`h_t(x_{t-1}, x_t, t)` returning a pytree.
        rng_key: PRNG key; the time loop draws from a Philox-4x32 key derived
            from it (see ``bayes.inference.smc._rng``). Each step draws the
            resampling (and exact backward-draw) uniforms of the next one and
            passes them on in the loop carry: XLA then materialises them once,
            where uniforms drawn and consumed in the same step must be kept
            from being fused into, and recomputed by, each of their consumers.
        num_particles: ``N >= 2``.
        num_backward: ``K >= 1`` backward draws per particle.
        backward: ``"exact"`` (:math:`O(N^2)`), ``"rejection"`` or ``"mcmc"`` (:math:`O(N)`).
        initial_fn: :math:`h_0(x_0)`; zeros when ``None``.
        resampling: Resampling scheme name.
        num_mcmc_steps: MH steps per draw for ``backward="mcmc"``.
        max_trials: Proposals per draw for ``backward="rejection"``.

    Returns:
        The output, as a :class:`ParisOutput`.
    """
    validate(num_particles, num_backward, backward, model)
    get_scheme(resampling)
    ys = check_observations(observations)
    k0, k_rest = jax.random.split(loop_key(rng_key))
    state = init(k0, model, theta, ys[0], num_particles, additive_fn, initial_fn)

    width = 1 + (num_backward if backward == "exact" else 0)
    dtype = state.log_weights.dtype

    def ahead(key: Array) -> tuple[Array, Array]:
        u = jax.random.uniform(key, (num_particles, width), dtype)
        return u[:, 0], u[:, 1:]

    def body(carry, inputs):
        state, draws = carry
        keys, y, t = inputs
        new, _ = step(
            keys[0],
            state,
            model,
            theta,
            y,
            t,
            additive_fn,
            num_backward=num_backward,
            backward=backward,
            resampling=resampling,
            num_mcmc_steps=num_mcmc_steps,
            max_trials=max_trials,
            draws=draws if backward == "exact" else (draws[0], None),
        )
        return (new, ahead(keys[1])), None

    num_steps = ys.shape[0] - 1
    k_first, k_loop = jax.random.split(k_rest)
    keys = jax.random.split(k_loop, (num_steps, 2))
    inputs = (keys, ys[1:], jnp.arange(1, num_steps + 1))
    (final, _), _ = jax.lax.scan(body, (state, ahead(k_first)), inputs)
    return ParisOutput(estimate(final), final.log_likelihood)
