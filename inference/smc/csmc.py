"""Conditional SMC with backward sampling and Parisian particle Gibbs (PPG).

PPG (Cardoso et al. 2023) is PaRIS driven by conditional SMC: one sweep

1. runs a bootstrap filter in which particle 0 is frozen to the conditioning
   path :math:`z_{0:T-1}` (conditional resampling keeps ancestor 0 for slot 0);
2. draws ``K`` backward indices for **every** particle, the frozen one
   included, and updates PaRIS statistics (:func:`~bayes.inference.smc.paris.backward_update`);
3. returns the estimate :math:`\\sum_i W_{T-1}^i \\tau_{T-1}^i` and a new path
   drawn by picking :math:`b_{T-1} \\sim W_{T-1}` and then, backwards, one of
   the ``K`` backward indices of the current particle uniformly.

With ``backward="mcmc"`` the backward indices are ``num_mcmc_steps``
independent-MH moves (proposal :math:`W_{t-1}`) started at each particle's
ancestor, the :math:`O(N)` kernel of :func:`~bayes.inference.smc.backward.mcmc_draws`.
Tracing the path through them is still a valid kernel: each move is a
Metropolis-within-Gibbs update of the conditioning path's ancestor index,
whose full conditional is the backward kernel (ancestor sampling, Lindsten
et al. 2014), started at its current value, the genealogy. The non-frozen
slots are shuffled so that each ancestor is marginally :math:`W_{t-1}`-distributed
(Dau & Chopin 2022).

The path update is conditional SMC with backward sampling, a Markov kernel
leaving the smoothing law invariant; given the particles, the estimate is
unbiased for the forward-filtering backward-smoothing estimate, so a sweep
started from an exact posterior path gives an unbiased estimate.
:func:`run_ppg` iterates ``num_sweeps`` sweeps after an unconditional one
(plain PaRIS) and averages the estimates of sweeps ``num_burnin + 1 ..
num_sweeps``. A sweep stores ``(T, N)`` particles and ``(T, N, K)`` indices.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from bayes.inference.smc._rng import loop_key
from bayes.inference.smc.paris import (
    AdditiveFn,
    InitialFn,
    backward_update,
    validate,
    zero_initial_fn,
)
from bayes.inference.smc.resampling import get_scheme
from bayes.inference.smc.ssm import StateSpaceModel, check_observations, check_positive
from jax import Array

__all__ = ["PPGOutput", "SweepOutput", "csmc_sweep", "run_ppg"]


class SweepOutput(NamedTuple):
    """One conditional sweep: new ``path`` ``(T, *state_shape)``, the PaRIS
    ``estimate`` and the filter's ``log_likelihood``."""

    path: Array
    estimate: Any
    log_likelihood: Array


class PPGOutput(NamedTuple):
    """PPG: ``estimate`` (average after burn-in), per-sweep ``estimates``
    (leading axis ``num_sweeps + 1``; entry 0 is the unconditional PaRIS run)
    and the last ``path``."""

    estimate: Any
    estimates: Any
    path: Array


def _shuffle(rng_key: Array, ancestors: Array, conditional: Array) -> Array:
    # Slot 0 holds the frozen particle in a conditional sweep and stays put; the
    # other slots are exchangeable, so permuting them leaves the sweep's law intact.
    n = ancestors.shape[0]
    key = jax.random.fold_in(rng_key, 1)
    rest = 1 + jax.random.permutation(key, n - 1)
    perm = jnp.where(conditional, jnp.concatenate([jnp.zeros(1, rest.dtype), rest]),
                     jax.random.permutation(key, n))  # fmt: skip
    return ancestors[perm]


def csmc_sweep(
    rng_key: Array,
    model: StateSpaceModel,
    theta: Any,
    observations: Array,
    path: Array,
    additive_fn: AdditiveFn,
    *,
    num_particles: int,
    num_backward: int = 2,
    conditional: bool | Array = True,
    backward: str = "exact",
    resampling: str = "multinomial",
    initial_fn: InitialFn | None = None,
    max_trials: int = 16,
    num_mcmc_steps: int = 1,
) -> SweepOutput:
    """One PPG sweep (conditional SMC + PaRIS + backward path draw).

    Args:
        rng_key: PRNG key; the sweep draws from a Philox-4x32 key derived from
            it (see ``bayes.inference.smc._rng``).
        model: The state-space model.
        theta: Parameters (pytree).
        observations: Shape ``(T, *obs_shape)``.
        path: Conditioning path ``(T, *state_shape)`` (ignored if not ``conditional``).
        additive_fn: :math:`h_t(x_{t-1}, x_t, t)`.
        num_particles: ``N >= 2``.
        num_backward: ``K >= 1``.
        conditional: ``False`` runs an unconditional sweep (PaRIS with a path draw).
        backward: ``"exact"``, ``"rejection"`` or ``"mcmc"`` backward draws.
        resampling: Scheme name (its conditional version is used).
        initial_fn: :math:`h_0`; zeros when ``None``.
        max_trials: For ``backward="rejection"``.
        num_mcmc_steps: MH steps per backward draw for ``backward="mcmc"``.
    """
    n = num_particles
    scheme, cond_scheme = get_scheme(resampling)
    conditional = jnp.asarray(conditional)
    k0, k_sweep, k_last, k_path = jax.random.split(loop_key(rng_key), 4)
    x0 = jax.vmap(model.initial_sampler, in_axes=(0, None))(jax.random.split(k0, n), theta)
    x0 = jnp.where(conditional, x0.at[0].set(path[0]), x0)
    log_g = jax.vmap(model.observation_logdensity, in_axes=(0, None, None, None))(
        x0, observations[0], 0, theta
    )
    lse = jax.nn.logsumexp(log_g)
    h0 = initial_fn if initial_fn is not None else (lambda x: zero_initial_fn(additive_fn, x))
    carry0 = (x0, log_g - lse, jax.vmap(h0)(x0), lse - jnp.log(n))

    def body(carry, inputs):
        x_prev, logw, stats, loglik = carry
        key, y, z, t = inputs
        k_res, k_move, k_back = jax.random.split(key, 3)
        w = jnp.exp(logw)
        ancestors = jnp.where(conditional, cond_scheme(k_res, w, n, 0), scheme(k_res, w, n))
        if backward == "mcmc":
            ancestors = _shuffle(k_res, ancestors, conditional)
        x = jax.vmap(model.transition_sampler, in_axes=(0, 0, None, None))(
            jax.random.split(k_move, n), x_prev[ancestors], t, theta
        )
        x = jnp.where(conditional, x.at[0].set(z), x)
        lg = jax.vmap(model.observation_logdensity, in_axes=(0, None, None, None))(x, y, t, theta)
        lse = jax.nn.logsumexp(lg)
        stats, idx = backward_update(
            k_back,
            model,
            theta,
            t,
            x_prev,
            logw,
            stats,
            x,
            ancestors,
            additive_fn,
            num_backward=num_backward,
            backward=backward,
            max_trials=max_trials,
            num_mcmc_steps=num_mcmc_steps,
        )
        return (x, lg - lse, stats, loglik + lse - jnp.log(n)), (x, idx)

    num_steps = observations.shape[0] - 1
    inputs = (
        jax.random.split(k_sweep, num_steps),
        observations[1:],
        path[1:],
        jnp.arange(1, num_steps + 1),
    )
    (x_last, logw, stats, loglik), (xs, idxs) = jax.lax.scan(body, carry0, inputs)
    w = jnp.exp(logw)
    est = jax.tree.map(lambda s: jnp.tensordot(w, s, axes=1), stats)

    b_last = jax.random.categorical(k_last, logw).astype(jnp.int32)

    def back(b, inputs):
        key, x_prev, idx = inputs
        b_prev = idx[b, jax.random.randint(key, (), 0, num_backward)]
        return b_prev, x_prev[b_prev]

    particles_prev = jnp.concatenate([x0[None], xs[:-1]])
    _, states = jax.lax.scan(
        back, b_last, (jax.random.split(k_path, num_steps), particles_prev, idxs), reverse=True
    )
    new_path = jnp.concatenate([states, x_last[b_last][None]])
    return SweepOutput(new_path, est, loglik)


def run_ppg(
    model: StateSpaceModel,
    theta: Any,
    observations: Array,
    additive_fn: AdditiveFn,
    *,
    rng_key: Array,
    num_particles: int,
    num_backward: int = 2,
    num_sweeps: int = 10,
    num_burnin: int = 0,
    initial_path: Array | None = None,
    backward: str = "exact",
    resampling: str = "multinomial",
    initial_fn: InitialFn | None = None,
    num_mcmc_steps: int = 1,
) -> PPGOutput:
    """Parisian particle Gibbs estimate of a smoothed additive functional.

    Args:
        model: The state-space model, as in :func:`csmc_sweep`.
        theta: Parameters (pytree), as in :func:`csmc_sweep`.
        observations: Shape ``(T, *obs_shape)``, as in :func:`csmc_sweep`.
        additive_fn: :math:`h_t(x_{t-1}, x_t, t)`, as in :func:`csmc_sweep`.
        rng_key: PRNG key.
        num_particles: ``N >= 2``.
        num_backward: ``K >= 1``.
        num_sweeps: ``k`` conditional sweeps.
        num_burnin: ``k0 < k`` sweeps left out of the average.
        initial_path: Conditioning path ``(T, *state_shape)``; ``None`` draws
            it from an unconditional sweep (whose estimate is plain PaRIS).
        backward: ``"exact"``, ``"rejection"`` or ``"mcmc"`` (:math:`O(N)`
            MH backward draws).
        resampling: Scheme name.
        initial_fn: :math:`h_0`.
        num_mcmc_steps: MH steps per backward draw for ``backward="mcmc"``.

    Returns:
        The run as a :class:`PPGOutput`; ``estimate`` is
            :math:`(k - k_0)^{-1} \\sum_{\\ell = k_0 + 1}^{k} \\hat H_\\ell`.
    """
    validate(num_particles, num_backward, backward, model)
    check_positive("num_mcmc_steps", num_mcmc_steps, 1)
    check_positive("num_sweeps", num_sweeps, 1)
    if not 0 <= num_burnin < num_sweeps:
        raise ValueError(f"num_burnin must be in [0, num_sweeps), got {num_burnin}")
    ys = check_observations(observations, min_length=2)
    options = dict(
        num_particles=num_particles,
        num_backward=num_backward,
        backward=backward,
        resampling=resampling,
        initial_fn=initial_fn,
        num_mcmc_steps=num_mcmc_steps,
    )
    k_init, k_sweeps = jax.random.split(rng_key)
    if initial_path is None:
        dummy = jnp.zeros((ys.shape[0], *jnp.shape(model.initial_sampler(k_init, theta))))
        first = csmc_sweep(
            k_init, model, theta, ys, dummy, additive_fn, conditional=False, **options
        )
    else:
        first = csmc_sweep(k_init, model, theta, ys, initial_path, additive_fn, **options)

    def body(path, key):
        out = csmc_sweep(key, model, theta, ys, path, additive_fn, **options)
        return out.path, out.estimate

    path, ests = jax.lax.scan(body, first.path, jax.random.split(k_sweeps, num_sweeps))
    avg = jax.tree.map(lambda e: jnp.mean(e[num_burnin:], axis=0), ests)
    all_ests = jax.tree.map(lambda a, e: jnp.concatenate([a[None], e]), first.estimate, ests)
    return PPGOutput(avg, all_ests, path)
