"""ChEES-HMC warmup, preconditioned by a short per-chain window adaptation.

BlackJAX's ``chees_adaptation`` adapts one step size and one trajectory
length for all chains, starting from an identity mass matrix (its diagonal
estimate engages only in the second half of warmup). From Stan-like
dispersed initial points on a badly scaled posterior (posteriordb's
``kidiq`` and ``earnings`` regressions: uncentred predictors, coefficient
scales 100x apart, correlation -0.99) some chains start where the gradient
is ~1e7: every trajectory of theirs diverges, the shared dual-averaging
step size collapses to ~1e-3 and below for everyone (it tracks the harmonic
mean of the acceptance rates), trajectories hit the 1000-leapfrog cap and
the stuck chains never reach the typical set.

The fix here: the first part of warmup is Stan's window adaptation run per
chain (each chain its own step size, so a chain in the far tail does not
slow the others; see :mod:`bayes.inference.mcmc.window`). From its end
states :func:`chees_warmup` builds an affine preconditioner

.. math::

    x = L z, \\qquad L = \\operatorname{diag}(\\operatorname{median}_c\\, m_c)^{1/2}
    \\ \\text{(diagonal)} \\quad\\text{or}\\quad
    L L^\\top = \\operatorname{mean}_c\\, M_c \\ \\text{(dense)},

with :math:`m_c`, :math:`M_c` chain :math:`c`'s adapted inverse mass matrix
(the median makes a chain that is still stuck irrelevant), runs BlackJAX's
ChEES adaptation on :math:`z \\mapsto \\log\\pi(Lz)` from the chains' current
positions with the median adapted step size, and maps the result back: HMC
on :math:`z` with inverse mass matrix :math:`D` and step size
:math:`\\epsilon` is the same Markov chain as HMC on :math:`x` with inverse
mass matrix :math:`L D L^\\top` and step size :math:`\\epsilon`, so the
returned tuning is used with the plain log-density.

The ChEES phase is BlackJAX's algorithm taken one step at a time
(:func:`chees_adaptation`), so :func:`bayes.sample` can advance it in chunks
with a progress bar and checkpoints; :func:`chees_run_chunk` runs steps of
it and :func:`chees_warmup` the whole phase in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
from bayes.inference.mcmc.chains import ChainState, Tuning
from blackjax.adaptation import chees_adaptation as bj_chees
from blackjax.adaptation.mass_matrix import welford_algorithm
from blackjax.adaptation.metric_buffers import MomentBlock, cgl_update_batch
from blackjax.mcmc import dynamic_hmc
from blackjax.mcmc.dynamic_hmc import DynamicHMCState

__all__ = [
    "CheesWarmupInfo",
    "CheesWarmupState",
    "chees_adaptation",
    "chees_run_chunk",
    "chees_warmup",
]

# BlackJAX's run(): the diagonal mass matrix is estimated over the second half
# of ChEES warmup, and the slow-direction length floor is refreshed every 32 steps.
_WINDOW_FRACTION = 0.5
_DECAY_RATE = 0.5
_MAX_LEAPFROG_STEPS = 1000


class CheesWarmupState(NamedTuple):
    """State of the joint ChEES adaptation of all chains (leaves not per chain unless noted).

    Attributes:
        kernel: ``DynamicHMCState`` of every chain in the preconditioned
            coordinates ``z``, leaves ``(num_chains, d)``.
        adaptation: BlackJAX's ``ChEESAdaptationState`` (step size, trajectory
            length, their moving averages, dual-averaging and Adam states).
        mm_accum: Welford state of the pooled diagonal variance of ``z``.
        cov_accum: Moment block of the pooled covariance of ``z`` (length floor).
        eig_state: Top eigenpair estimate of the whitened covariance.
        preconditioner: ``L`` of :math:`x = L z`: shape ``(d,)`` (diagonal) or
            ``(d, d)`` (lower Cholesky factor).
    """

    kernel: DynamicHMCState
    adaptation: Any
    mm_accum: Any
    cov_accum: Any
    eig_state: Any
    preconditioner: jax.Array


class CheesWarmupInfo(NamedTuple):
    """What one ChEES warmup step records, each of shape ``(num_chains,)``.

    Attributes:
        diverging: Divergent trajectory.
        n_steps: Leapfrog steps (gradient evaluations).
    """

    diverging: jax.Array
    n_steps: jax.Array


def _affine(preconditioner: jax.Array):
    """``(to_x, to_z, grad_to_x)`` of :math:`x = L z` (``grad_to_x``: from ``L^T g`` back to g)."""
    if preconditioner.ndim == 2:
        chol = preconditioner

        def to_z(x):
            return jax.scipy.linalg.solve_triangular(chol, x, lower=True)

        def grad_to_x(g):  # dlogpi/dz = L^T dlogpi/dx
            return jax.scipy.linalg.solve_triangular(chol.T, g, lower=False)

        return (lambda z: chol @ z), to_z, grad_to_x
    scale = preconditioner
    return (lambda z: scale * z), (lambda x: x / scale), (lambda g: g / scale)


def chees_adaptation(
    logdensity_fn: Callable[[Any], jax.Array],
    example_position: Any,
    *,
    num_steps: int,
    max_sampling_steps: int = 1000,
    target_acceptance_rate: float = 0.651,
    learning_rate: float = 0.025,
) -> tuple[Callable, Callable, Callable]:
    """Joint ChEES adaptation in preconditioned coordinates, one step at a time.

    The steps are those of BlackJAX's ``chees_adaptation(...,
    mass_matrix_estimation="diagonal").run`` (its kernel, its ``init`` and
    ``update`` of step size and trajectory length, its Welford and covariance
    accumulators and length floor), taken out of its single ``lax.scan`` so a
    run can advance in chunks: the same key gives the same result however
    the steps are cut (a test checks it against ``run``).

    Args:
        logdensity_fn: ``logdensity_fn(position) -> scalar`` for one chain's pytree.
        example_position: One chain's position pytree (only its structure and
            shapes are used).
        num_steps: ChEES adaptation steps (sizes the mass-matrix window and jitter).
        max_sampling_steps: Sampling steps that follow (sizes the Halton jitter).
        target_acceptance_rate: Target of the harmonic-mean acceptance rate.
        learning_rate: Adam learning rate of the log trajectory length.

    Returns:
        ``(init, step, final)``:

            - ``init(positions, inverse_mass_matrices, step_sizes) -> CheesWarmupState``:
              positions with leaves ``(num_chains, ...)``; each chain's inverse mass
              matrix ``(num_chains, d)`` or ``(num_chains, d, d)`` and step size
              ``(num_chains,)`` from a previous adaptation (ones for none), which
              build the preconditioner (see the module docstring);
            - ``step(state, rng_key, i) -> (CheesWarmupState, CheesWarmupInfo)``:
              step ``i`` (``0 .. num_steps - 1``) with its key, the ``i``-th of
              ``jax.random.split(phase_key, num_steps)``;
            - ``final(state) -> ChainState``: kernels in the original coordinates
              and the fixed :class:`Tuning`, the same for every chain.
    """
    optim = optax.adam(learning_rate)
    max_bits = np.ceil(np.log2(num_steps + max_sampling_steps))

    def jitter(i):
        return dynamic_hmc.halton_sequence(i, max_bits)

    def integration_steps_fn(random_generator_arg, num_leapfrog_steps):
        return jnp.asarray(jnp.ceil(jitter(random_generator_arg) * num_leapfrog_steps), dtype=int)

    def next_random_arg_fn(i):
        return i + 1

    kernel = dynamic_hmc.build_kernel(
        next_random_arg_fn=next_random_arg_fn, integration_steps_fn=integration_steps_fn
    )
    adapt_init, adapt_update = bj_chees.base(
        jitter, next_random_arg_fn, optim, target_acceptance_rate, _DECAY_RATE,
        _MAX_LEAPFROG_STEPS,
    )  # fmt: skip
    wc_init, wc_update, _ = welford_algorithm(is_diagonal_matrix=True)
    window_start = int(_WINDOW_FRACTION * num_steps)

    def unravel_fn(dtype):
        # the structure of example_position with the dtype of the flat positions
        # (ravel_pytree's unravel would cast to the example's own dtypes)
        template = jax.tree.map(lambda x: np.zeros(np.shape(x), dtype), example_position)
        return jax.flatten_util.ravel_pytree(template)[1]

    def logdensity_z(preconditioner, dtype):
        to_x, unravel = _affine(preconditioner)[0], unravel_fn(dtype)
        return lambda z: logdensity_fn(unravel(to_x(z)))

    def init(positions: Any, inverse_mass_matrices: jax.Array, step_sizes: jax.Array):
        flat = jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(positions)
        num_dim = flat.shape[1]
        if inverse_mass_matrices.ndim == 3:
            preconditioner = jnp.linalg.cholesky(jnp.mean(inverse_mass_matrices, axis=0))
        else:  # the median: a chain still stuck in the tail does not matter
            preconditioner = jnp.sqrt(jnp.median(inverse_mass_matrices, axis=0))
        z = jax.vmap(_affine(preconditioner)[1])(flat)
        logdensity = logdensity_z(preconditioner, z.dtype)
        kernels = jax.vmap(lambda p: dynamic_hmc.init(p, logdensity, 0))(z)
        cov_accum = MomentBlock(
            count=jnp.zeros(()), mean=jnp.zeros((num_dim,)), m2=jnp.zeros((num_dim, num_dim))
        )
        return CheesWarmupState(
            kernels,
            adapt_init(0, jnp.median(step_sizes)),
            wc_init(num_dim),
            cov_accum,
            bj_chees._eig_state_init(num_dim),
            preconditioner,
        )

    def step(state: CheesWarmupState, rng_key: jax.Array, i: jax.Array):
        kernels, adaptation = state.kernel, state.adaptation
        num_chains, num_dim = kernels.position.shape
        threshold = bj_chees._mass_matrix_engagement_threshold(num_dim)
        in_window = i >= window_start
        recompute = i % bj_chees._LENGTH_FLOOR_RECOMPUTE_INTERVAL == 0
        imm = bj_chees._diagonal_mass_matrix_or_fallback(state.mm_accum, threshold, num_dim)
        engaged = state.mm_accum.sample_size >= threshold
        length, _ = bj_chees._apply_length_floor(
            adaptation.trajectory_length, state.eig_state.lambda_max, engaged, True,
            _MAX_LEAPFROG_STEPS, adaptation.step_size,
        )  # fmt: skip
        logdensity = logdensity_z(state.preconditioner, kernels.position.dtype)

        def one(key, kernel_state):
            return kernel(key, kernel_state, logdensity, adaptation.step_size, imm,
                          integration_steps_params=(length / adaptation.step_size,))  # fmt: skip

        new_kernels, info = jax.vmap(one)(jax.random.split(rng_key, num_chains), kernels)
        new_adaptation = adapt_update(
            adaptation, info.proposal.position, info.proposal.momentum, kernels.position,
            info.acceptance_rate, info.is_divergent, imm,
        )  # fmt: skip

        def fold(acc):
            return jax.lax.scan(lambda a, x: (wc_update(a, x), None), acc, new_kernels.position)[0]

        mm_accum = jax.lax.cond(in_window, fold, lambda a: a, state.mm_accum)
        cov_accum = jax.lax.cond(
            in_window, lambda a: cgl_update_batch(a, new_kernels.position), lambda a: a,
            state.cov_accum,
        )  # fmt: skip
        eig_state = jax.lax.cond(
            in_window & recompute,
            lambda e: bj_chees._recompute_eig_state(cov_accum, imm, e),
            lambda e: e,
            state.eig_state,
        )
        new_state = CheesWarmupState(
            new_kernels, new_adaptation, mm_accum, cov_accum, eig_state, state.preconditioner
        )
        record = CheesWarmupInfo(
            info.is_divergent, jnp.asarray(info.num_integration_steps, jnp.int32)
        )
        return new_state, record

    def final(state: CheesWarmupState) -> ChainState:
        adaptation = state.adaptation
        num_chains, num_dim = state.kernel.position.shape
        threshold = bj_chees._mass_matrix_engagement_threshold(num_dim)
        imm_z = bj_chees._diagonal_mass_matrix_or_fallback(state.mm_accum, threshold, num_dim)
        eig_state = bj_chees._recompute_eig_state(
            state.cov_accum, imm_z, state.eig_state,
            num_iterations=bj_chees._LENGTH_FLOOR_FINAL_POWER_ITERATIONS,
        )  # fmt: skip
        step_size = jnp.exp(adaptation.log_step_size_moving_average)
        length, _ = bj_chees._apply_length_floor(
            jnp.exp(adaptation.log_trajectory_length_moving_average), eig_state.lambda_max,
            state.mm_accum.sample_size >= threshold, True, _MAX_LEAPFROG_STEPS, step_size,
        )  # fmt: skip
        to_x, _, grad_to_x = _affine(state.preconditioner)
        unravel = unravel_fn(state.kernel.position.dtype)
        L = state.preconditioner
        imm = L @ (imm_z[:, None] * L.T) if L.ndim == 2 else L**2 * imm_z
        kernels = DynamicHMCState(
            jax.vmap(lambda z: unravel(to_x(z)))(state.kernel.position),
            state.kernel.logdensity,
            jax.vmap(lambda g: unravel(grad_to_x(g)))(state.kernel.logdensity_grad),
            state.kernel.random_generator_arg,
        )
        tuning = Tuning(step_size, imm, length / step_size)
        tuning = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_chains, *jnp.shape(x))), tuning)
        return ChainState(kernels, tuning)

    return init, step, final


def chees_run_chunk(
    step: Callable, state: CheesWarmupState, rng_key: jax.Array, steps: jax.Array, num_steps: int
) -> tuple[CheesWarmupState, CheesWarmupInfo]:
    """ChEES warmup steps ``steps`` (shape ``(n,)``, consecutive) of a phase of ``num_steps``.

    The key of step ``i`` is the ``i``-th of ``jax.random.split(rng_key,
    num_steps)``, as in BlackJAX's ``run``, so any cut into chunks gives the
    same result. Returns the new state and a :class:`CheesWarmupInfo` with
    leaves ``(n, num_chains)``.
    """
    keys = jax.random.split(rng_key, num_steps)[steps]
    return jax.lax.scan(lambda s, x: step(s, *x), state, (keys, steps))


def chees_warmup(
    logdensity_fn: Callable[[Any], jax.Array],
    positions: Any,
    inverse_mass_matrices: jax.Array,
    step_sizes: jax.Array,
    *,
    rng_key: jax.Array,
    num_steps: int,
    max_sampling_steps: int = 1000,
    target_acceptance_rate: float = 0.651,
    learning_rate: float = 0.025,
) -> ChainState:
    """Joint ChEES adaptation of all chains in preconditioned coordinates, in one call.

    Args:
        logdensity_fn: ``logdensity_fn(position) -> scalar`` for one chain's pytree.
        positions: Starting positions, leaves ``(num_chains, ...)``.
        inverse_mass_matrices: Each chain's inverse mass matrix from a previous
            adaptation, shape ``(num_chains, d)`` (diagonal preconditioner) or
            ``(num_chains, d, d)`` (dense); ones for no preconditioning.
        step_sizes: Each chain's step size from that adaptation, shape
            ``(num_chains,)``; their median starts ChEES' dual averaging.
        rng_key: PRNG key.
        num_steps: ChEES adaptation steps.
        max_sampling_steps: Sampling steps that follow (sizes the Halton jitter).
        target_acceptance_rate: Target of the harmonic-mean acceptance rate.
        learning_rate: Adam learning rate of the log trajectory length.

    Returns:
        The adapted :class:`~bayes.inference.mcmc.chains.ChainState` with leaves
            ``(num_chains, ...)``: ``DynamicHMCState`` kernels in the original
            coordinates and :class:`~bayes.inference.mcmc.chains.Tuning` (step
            size, inverse mass matrix ``(d,)`` or ``(d, d)``, mean leapfrog
            steps), the same for every chain.
    """
    init, step, final = chees_adaptation(
        logdensity_fn, jax.tree.map(lambda x: x[0], positions), num_steps=num_steps,
        max_sampling_steps=max_sampling_steps, target_acceptance_rate=target_acceptance_rate,
        learning_rate=learning_rate,
    )  # fmt: skip
    state = init(positions, inverse_mass_matrices, step_sizes)
    state, _ = chees_run_chunk(step, state, rng_key, jnp.arange(num_steps), num_steps)
    return final(state)
