"""Many chains of HMC-family samplers advanced in chunks, in BlackJAX's style.

The transition kernels are BlackJAX's (``blackjax.nuts``, ``blackjax.hmc``,
``blackjax.dynamic_hmc``); this module adds what chunked, resumable runs
need:

- :class:`ChainState`: the kernel state of one chain and its tuning (a
  :class:`~bayes.inference.mcmc.window.WindowAdaptationState` while adapting,
  or fixed :class:`Tuning` parameters).
- :func:`build_step`: one pure transition of one chain at global step index
  ``t``; during warmup (``t < num_warmup``) it also updates the adaptation, and
  at ``t = num_warmup - 1`` it switches to the final step size and mass matrix.
- :func:`run_chunk`: a number of transitions of all chains with
  ``lax.scan``. The key of step ``t`` is ``fold_in(rng_key, t)``, split over
  chains, so the draws do not depend on where the chunks are cut: a resumed
  run reproduces an uninterrupted one.

Everything is pure and jit/vmap/scan safe; tuning values are in the state
only because warmup changes them, settings are closed over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import blackjax
import jax
import jax.flatten_util
import jax.numpy as jnp
from bayes.inference.mcmc.window import WindowAdaptationState, window_adaptation
from blackjax.mcmc import dynamic_hmc

__all__ = [
    "METHODS",
    "ChainState",
    "StepInfo",
    "Tuning",
    "build_step",
    "chees_integration_steps",
    "run_chunk",
]

METHODS = ("nuts", "hmc", "chees")
_HALTON_BITS = 30


class Tuning(NamedTuple):
    """Fixed tuning of one chain (after ChEES warmup).

    Attributes:
        step_size: Scalar step size.
        inverse_mass_matrix: Shape ``(d,)``.
        num_integration_steps: Mean number of leapfrog steps (jittered per draw).
    """

    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    num_integration_steps: jax.Array


class ChainState(NamedTuple):
    """State of one chain.

    Attributes:
        kernel: BlackJAX state (``HMCState`` or ``DynamicHMCState``).
        tuning: :class:`WindowAdaptationState` or :class:`Tuning`.
    """

    kernel: Any
    tuning: Any


class StepInfo(NamedTuple):
    """What one transition of one chain records (scalars unless noted).

    Attributes:
        position: New unconstrained position (pytree).
        lp: Log-density at ``position``.
        diverging: Divergent trajectory.
        energy: Hamiltonian energy of the transition.
        acceptance_rate: Mean Metropolis acceptance probability.
        n_steps: Leapfrog steps (gradient evaluations).
        tree_depth: Number of trajectory doublings (NUTS; else 0).
        step_size: Step size used.
    """

    position: Any
    lp: jax.Array
    diverging: jax.Array
    energy: jax.Array
    acceptance_rate: jax.Array
    n_steps: jax.Array
    tree_depth: jax.Array
    step_size: jax.Array


def chees_integration_steps(random_generator_arg: jax.Array, num_steps: jax.Array) -> jax.Array:
    """Jittered number of leapfrog steps of ChEES-HMC: ``ceil(h_i * L)``, h the Halton sequence."""
    h = dynamic_hmc.halton_sequence(random_generator_arg, _HALTON_BITS)
    return jnp.asarray(jnp.ceil(h * num_steps), dtype=int)


def build_step(
    method: str,
    *,
    max_tree_depth: int = 10,
    num_integration_steps: int = 16,
    target_acceptance_rate: float = 0.8,
    is_mass_matrix_diagonal: bool = True,
    select_dense: bool = False,
    divergence_threshold: float = 1000.0,
) -> tuple[Callable, Callable]:
    """Init and step functions of one chain.

    Args:
        method: ``"nuts"``, ``"hmc"`` (static trajectory length) or ``"chees"``
            (jittered HMC with fixed ChEES tuning; warmup is done elsewhere).
        max_tree_depth: Maximum number of NUTS doublings.
        num_integration_steps: Leapfrog steps of ``"hmc"``.
        target_acceptance_rate: Dual-averaging target.
        is_mass_matrix_diagonal: Diagonal (else dense) mass matrix.
        select_dense: Dense matrix only where the warmup finds correlations
            (see :func:`~bayes.inference.mcmc.window.window_adaptation`).
        divergence_threshold: Energy error that flags a divergence.

    Returns:
        ``(init, step)``:

            - ``init(kernel_state, initial_step_size=1.0) -> ChainState`` from a
              BlackJAX ``HMCState`` (window adaptation initialised; for ChEES
              build the state yourself);
            - ``step(rng_key, state, logdensity_fn, t, num_warmup, stage, window_end)
              -> (ChainState, StepInfo)``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    adapt_init, adapt_update, adapt_final = window_adaptation(
        is_mass_matrix_diagonal=is_mass_matrix_diagonal,
        target_acceptance_rate=target_acceptance_rate,
        select_dense=select_dense,
    )
    if method == "nuts":
        kernel = blackjax.nuts.build_kernel(divergence_threshold=divergence_threshold)
        extra = {"max_num_doublings": max_tree_depth}
    elif method == "hmc":
        kernel = blackjax.hmc.build_kernel(divergence_threshold=divergence_threshold)
        extra = {"num_integration_steps": num_integration_steps}
    else:
        kernel = dynamic_hmc.build_kernel(
            divergence_threshold=divergence_threshold,
            next_random_arg_fn=lambda i: i + 1,
            integration_steps_fn=chees_integration_steps,
        )
        extra = {}

    def init(kernel_state: Any, initial_step_size: float = 1.0) -> ChainState:
        num_dimensions = jax.flatten_util.ravel_pytree(kernel_state.position)[0].shape[0]
        return ChainState(kernel_state, adapt_init(num_dimensions, initial_step_size))

    def step(rng_key, state: ChainState, logdensity_fn, t, num_warmup, stage, window_end):
        tuning = state.tuning
        params = dict(extra)
        if isinstance(tuning, Tuning):
            params["integration_steps_params"] = (tuning.num_integration_steps,)
        new_kernel, info = kernel(
            rng_key,
            state.kernel,
            logdensity_fn,
            tuning.step_size,
            tuning.inverse_mass_matrix,
            **params,
        )
        if isinstance(tuning, WindowAdaptationState):

            def adapt(s):
                s = adapt_update(s, stage, window_end, new_kernel.position, info.acceptance_rate)
                return jax.lax.cond(t == num_warmup - 1, adapt_final, lambda x: x, s)

            tuning = jax.lax.cond(t < num_warmup, adapt, lambda s: s, tuning)
        depth = getattr(info, "num_trajectory_expansions", jnp.zeros((), jnp.int32))
        record = StepInfo(
            position=new_kernel.position,
            lp=new_kernel.logdensity,
            diverging=info.is_divergent,
            energy=info.energy,
            acceptance_rate=info.acceptance_rate,
            n_steps=jnp.asarray(info.num_integration_steps, jnp.int32),
            tree_depth=jnp.asarray(depth, jnp.int32),
            step_size=jnp.asarray(state.tuning.step_size),
        )
        return ChainState(new_kernel, tuning), record

    return init, step


def run_chunk(
    step: Callable,
    logdensity: Callable,
    states: ChainState,
    data: Any,
    rng_key: jax.Array,
    start: jax.Array,
    num_warmup: jax.Array,
    stage: jax.Array,
    window_end: jax.Array,
    *,
    data_axis: int | None = None,
    chain_axis_name: str | None = None,
    sequential: bool = False,
) -> tuple[ChainState, StepInfo]:
    """Advance all chains by ``len(stage)`` steps.

    Args:
        step: The ``step`` of :func:`build_step`.
        logdensity: ``logdensity(position, data) -> scalar``.
        states: Chain states, leaves with a leading ``(num_chains,)`` axis.
        data: Data passed to ``logdensity``; shared by all chains when
            ``data_axis`` is None, else split along that axis (one data set per
            chain, as in simulation-based calibration).
        rng_key: Key of the whole run.
        start: Global index of the first step of the chunk.
        num_warmup: Number of warmup steps of the run.
        stage: Shape ``(num_steps,)``, the schedule's stage of each step (0 after warmup).
        window_end: Shape ``(num_steps,)``, slow-window ends.
        data_axis: See ``data``.
        chain_axis_name: Inside ``shard_map`` over the chains, the name of the
            mapped mesh axis: ``states`` then holds this shard's block of chains,
            and each chain gets the key it would get in an unsharded run, so the
            draws do not depend on the number of devices.
        sequential: Advance each chain through the chunk on its own
            (``lax.map`` over chains, a ``scan`` over steps in each) instead of
            all chains together under ``vmap``; same keys, same draws up to
            floating-point rounding. Needs ``data_axis=None``.

    Returns:
        ``(states, info)``: the new states and a :class:`StepInfo` with leaves of
            shape ``(num_steps, num_chains, ...)``.
    """
    num_chains = jax.tree.leaves(states)[0].shape[0]
    num_total, offset = num_chains, 0
    if chain_axis_name is not None:
        num_total = num_chains * jax.lax.axis_size(chain_axis_name)
        offset = jax.lax.axis_index(chain_axis_name) * num_chains

    def one_chain(key, state, chain_data, t, st, we):
        return step(key, state, lambda x: logdensity(x, chain_data), t, num_warmup, st, we)

    def chain_keys(t):
        keys = jax.random.split(jax.random.fold_in(rng_key, t), num_total)
        if chain_axis_name is not None:
            keys = jax.lax.dynamic_slice_in_dim(keys, offset, num_chains)
        return keys

    xs = (jnp.arange(stage.shape[0]), stage, window_end)
    if sequential:
        if data_axis is not None:
            raise ValueError("sequential chains take data shared by all chains")

        # the keys of every step and chain, drawn once: shape (num_chains, num_steps)
        keys = jnp.swapaxes(jax.vmap(chain_keys)(start + xs[0]), 0, 1)

        def one_run(carry):
            state, chain_keys_ = carry

            def body(state, x):
                key, i, st, we = x
                t = start + i
                return one_chain(key, state, data, t, st, we)

            return jax.lax.scan(body, state, (chain_keys_, *xs))

        states, info = jax.lax.map(one_run, (states, keys))
        return states, jax.tree.map(lambda v: jnp.swapaxes(v, 0, 1), info)

    def body(states, xs):
        i, st, we = xs
        t = start + i
        vstep = jax.vmap(one_chain, in_axes=(0, 0, data_axis, None, None, None))
        return vstep(chain_keys(t), states, data, t, st, we)

    return jax.lax.scan(body, states, xs)
