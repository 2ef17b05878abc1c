"""Backward draws: indices from the backward kernel of a particle filter.

Given particles :math:`x_{t-1}^{1:N}` with normalised weights :math:`W^{1:N}`
and new particles :math:`x_t^{1:M}`, the backward kernel is

.. math::

    \\Lambda(i, j) \\propto W^j\\, q_t(x_{t-1}^j, x_t^i).

Three samplers of ``K`` indices per new particle, all returning ``(M, K)`` int32:

- :func:`exact_draws`: the full ``(M, N)`` matrix, :math:`O(MN)`.
- :func:`rejection_draws`: propose :math:`j \\sim W` and accept with
  probability :math:`q_t(x_{t-1}^j, x_t^i) / \\bar q_t` (needs the bound
  :math:`\\bar q_t`), at most ``max_trials`` times; if any draw fails, the
  failed ones are redrawn exactly (Douc et al. 2011; Olsson & Westerborn 2017).
  Expected cost :math:`O(N)` when the bound is reasonable.
- :func:`mcmc_draws`: independent Metropolis-Hastings with proposal ``W``
  started from the particle's ancestor, which is itself an exact draw from
  :math:`\\Lambda` when the ancestors are drawn from ``W`` (Dau & Chopin
  2022); fixed :math:`O(N K \\cdot \\text{num\\_mcmc\\_steps})` cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from bayes.inference.smc.resampling import multinomial
from jax import Array

__all__ = ["exact_draws", "mcmc_draws", "pairwise_logdensity", "rejection_draws"]

PairLogdensity = Callable[[Array, Array], Array]


def pairwise_logdensity(log_q: PairLogdensity, x_prev: Array, x_new: Array) -> Array:
    """Matrix ``L[i, j] = log q(x_prev[j], x_new[i])`` of shape ``(M, N)``."""
    return jax.vmap(lambda xn: jax.vmap(lambda xp: log_q(xp, xn))(x_prev))(x_new)


def exact_draws(
    rng_key: Array,
    log_q: PairLogdensity,
    x_prev: Array,
    log_weights: Array,
    x_new: Array,
    num_backward: int,
) -> Array:
    """``K`` exact i.i.d. backward indices per new particle, shape ``(M, K)``."""
    logits = log_weights[None, :] + pairwise_logdensity(log_q, x_prev, x_new)
    # Inverse-CDF sampling: K uniforms per row instead of K * N Gumbel variates.
    probs = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
    cdf = jnp.cumsum(probs, axis=-1)
    u = jax.random.uniform(rng_key, (x_new.shape[0], num_backward)) * cdf[:, -1:]
    idx = jax.vmap(lambda c, v: jnp.searchsorted(c, v, side="right"))(cdf, u)
    return jnp.clip(idx, 0, x_prev.shape[0] - 1).astype(jnp.int32)


def rejection_draws(
    rng_key: Array,
    log_q: PairLogdensity,
    log_bound: Array,
    x_prev: Array,
    log_weights: Array,
    x_new: Array,
    num_backward: int,
    max_trials: int = 16,
) -> Array:
    """Accept-reject backward draws with an exact fallback, shape ``(M, K)``.

    Args:
        log_bound: Upper bound of ``log_q`` over both arguments (scalar).
        max_trials: Proposals per draw before falling back to an exact draw.
    """
    m = x_new.shape[0]
    k_prop, k_acc, k_exact = jax.random.split(rng_key, 3)
    shape = (max_trials, m, num_backward)
    # Inverse-CDF draws cost O(N + draws); categorical(shape=...) would draw N Gumbels each.
    proposals = multinomial(k_prop, jnp.exp(log_weights), math.prod(shape)).reshape(shape)
    log_acc = jax.vmap(
        lambda props: jax.vmap(lambda row, xn: jax.vmap(lambda j: log_q(x_prev[j], xn))(row))(
            props, x_new
        )
    )(proposals)
    accepted = jnp.log(jax.random.uniform(k_acc, shape)) < log_acc - log_bound
    first = jnp.argmax(accepted, axis=0)
    found = jnp.any(accepted, axis=0)
    chosen = jnp.take_along_axis(proposals, first[None], axis=0)[0]

    def with_fallback(_):
        exact = exact_draws(k_exact, log_q, x_prev, log_weights, x_new, num_backward)
        return jnp.where(found, chosen, exact)

    return jax.lax.cond(jnp.all(found), lambda _: chosen, with_fallback, None)


def mcmc_draws(
    rng_key: Array,
    log_q: PairLogdensity,
    x_prev: Array,
    log_weights: Array,
    x_new: Array,
    ancestors: Array,
    num_backward: int,
    num_mcmc_steps: int = 1,
) -> Array:
    """Independent-MH backward draws started at the ancestors, shape ``(M, K)``.

    Args:
        ancestors: Ancestor index of each new particle, shape ``(M,)``; each
            must be marginally ``W``-distributed (shuffle systematic ancestors).
        num_mcmc_steps: MH steps per draw.
    """
    m = x_new.shape[0]
    w = jnp.exp(log_weights)
    current = jnp.broadcast_to(ancestors[:, None], (m, num_backward))
    pair = jax.vmap(jax.vmap(lambda j, xn: log_q(x_prev[j], xn), in_axes=(0, None)))
    current_logq = pair(current, x_new)

    def body(carry, key):
        idx, lq = carry
        k_prop, k_acc = jax.random.split(key)
        prop = multinomial(k_prop, w, m * num_backward).reshape(m, num_backward)
        prop_lq = pair(prop, x_new)
        accept = jnp.log(jax.random.uniform(k_acc, (m, num_backward))) < prop_lq - lq
        return (jnp.where(accept, prop, idx), jnp.where(accept, prop_lq, lq)), None

    (idx, _), _ = jax.lax.scan(
        body, (current, current_logq), jax.random.split(rng_key, num_mcmc_steps)
    )
    return idx
