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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import blackjax
import jax
import jax.flatten_util
import jax.numpy as jnp
import optax
from bayes.inference.mcmc.chains import ChainState, Tuning
from blackjax.adaptation.base import get_filter_adapt_info_fn
from blackjax.mcmc.dynamic_hmc import DynamicHMCState

__all__ = ["chees_warmup"]


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
    """Joint ChEES adaptation of all chains in preconditioned coordinates.

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
        :class:`~bayes.inference.mcmc.chains.ChainState` with leaves
        ``(num_chains, ...)``: ``DynamicHMCState`` kernels in the original
        coordinates and :class:`~bayes.inference.mcmc.chains.Tuning` (step
        size, inverse mass matrix ``(d,)`` or ``(d, d)``, mean leapfrog
        steps), the same for every chain.
    """
    flat = jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(positions)
    num_chains = flat.shape[0]
    _, unravel = jax.flatten_util.ravel_pytree(jax.tree.map(lambda x: x[0], positions))
    dense = inverse_mass_matrices.ndim == 3
    if dense:
        chol = jnp.linalg.cholesky(jnp.mean(inverse_mass_matrices, axis=0))

        def to_x(z):
            return chol @ z

        def to_z(x):
            return jax.scipy.linalg.solve_triangular(chol, x, lower=True)

        def grad_to_x(g):  # dlogpi/dz = L^T dlogpi/dx
            return jax.scipy.linalg.solve_triangular(chol.T, g, lower=False)
    else:
        scale = jnp.sqrt(jnp.median(inverse_mass_matrices, axis=0))

        def to_x(z):
            return scale * z

        def to_z(x):
            return x / scale

        def grad_to_x(g):
            return g / scale

    def logdensity_z(z):
        return logdensity_fn(unravel(to_x(z)))

    warmup = blackjax.chees_adaptation(
        logdensity_z,
        num_chains,
        target_acceptance_rate=target_acceptance_rate,
        mass_matrix_estimation="diagonal",
        adaptation_info_fn=get_filter_adapt_info_fn(),
    )
    (states, params), _ = warmup.run(
        rng_key,
        jax.vmap(to_z)(flat),
        jnp.median(step_sizes),
        optax.adam(learning_rate),
        num_steps,
        max_sampling_steps=max_sampling_steps,
    )
    imm_z = params["inverse_mass_matrix"]
    if dense:
        imm = chol @ (imm_z[:, None] * chol.T)
    else:
        imm = scale**2 * imm_z
    kernel = DynamicHMCState(
        jax.vmap(lambda z: unravel(to_x(z)))(states.position),
        states.logdensity,
        jax.vmap(lambda g: unravel(grad_to_x(g)))(states.logdensity_grad),
        states.random_generator_arg,
    )
    tuning = Tuning(params["step_size"], imm, params["integration_steps_params"][0])
    tuning = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_chains, *jnp.shape(x))), tuning)
    return ChainState(kernel, tuning)
