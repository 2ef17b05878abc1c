"""Stan's windowed adaptation of step size and mass matrix, one step at a time.

BlackJAX's ``window_adaptation`` runs the whole warmup inside one
``lax.scan``. To advance a run in chunks (progress bars, checkpoints,
interruption) the adaptation has to be a pure per-step update instead. This
module composes BlackJAX's own building blocks, dual averaging of the step
size (``dual_averaging_adaptation``), Welford estimation of the inverse mass
matrix (``mass_matrix_adaptation``) and Stan's schedule (``build_schedule``),
into ``init`` / ``update`` / ``final`` functions in BlackJAX's style.

Schedule: a fast window (step size only), slow windows doubling in length
(step size and the mass matrix; at the end of each the inverse mass matrix
is set to the regularised sample covariance of the window and dual averaging
restarts from the window's averaged step size), a final fast window. After
warmup the step size is :math:`\\exp(\\bar x_T)`, the dual-averaging iterate
average, as in Hoffman & Gelman (2014).

Choosing between a dense and a diagonal metric (``select_dense=True``): a
dense inverse mass matrix removes the correlations a diagonal one leaves, at
the price of estimating :math:`d(d+1)/2` numbers from a window's :math:`n`
draws. With :math:`R` the window's sample correlation matrix, a diagonal
metric leaves the target preconditioned with condition number
:math:`\\kappa(R)`; a dense estimate from :math:`n` independent draws leaves
about the Marchenko-Pastur spread :math:`\\kappa_{MP} = ((1 + \\sqrt{d/n}) /
(1 - \\sqrt{d/n}))^2` (infinite for :math:`n \\le d`), and sampling noise
alone inflates :math:`\\kappa(R)` of an uncorrelated target to about that
value too. A window's dense estimate is therefore kept only where
:math:`\\kappa(R) > c\\,\\kappa_{MP}` (:func:`prefer_dense`, ``c = 4``: NUTS'
cost grows roughly like :math:`\\sqrt\\kappa`, so the dense metric must be
expected to halve it), and replaced by its diagonal otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
from blackjax.adaptation.step_size import dual_averaging_adaptation

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["WindowAdaptationState", "prefer_dense", "schedule", "window_adaptation"]

DENSE_FACTOR = 4.0


class WindowAdaptationState(NamedTuple):
    """State of the window adaptation of one chain.

    Attributes:
        da_state: Dual-averaging state of :math:`\\log` step size.
        mm_state: Welford state of the current slow window and the inverse mass matrix.
        step_size: Step size in force (scalar).
        inverse_mass_matrix: Inverse mass matrix in force, shape ``(d,)`` or ``(d, d)``.
    """

    da_state: Any
    mm_state: Any
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


def schedule(num_warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Stan's warmup schedule as two arrays.

    Args:
        num_warmup: Number of warmup steps.

    Returns:
        ``(stage, window_end)``, each of shape ``(num_warmup,)``: stage 0 is a
            fast (step size only) step, 1 a slow one; ``window_end`` marks the last
            step of each slow window.

    The windows are those of BlackJAX's ``build_schedule`` (initial fast
    buffer 75, first slow window 25, final fast buffer 50, shrunk for short
    warmups), computed in NumPy: ``build_schedule`` returns a ``jnp`` array,
    whose conversion is a small program to load in a fresh process.
    """
    stage, window_end = np.zeros(num_warmup, np.int32), np.zeros(num_warmup, bool)
    if num_warmup < 20:  # too short to estimate a mass matrix: step size only
        return stage, window_end
    initial, first, final = 75, 25, 50
    if initial + first + final > num_warmup:
        initial, final = int(0.15 * num_warmup), int(0.1 * num_warmup)
        first = num_warmup - initial - final
    final_start = num_warmup - final
    start, size = initial, first
    while start < final_start:
        if 3 * size > final_start - start:  # the next window would not fit: extend this one
            size = final_start - start
        stage[start : start + size] = 1
        window_end[start + size - 1] = True
        start, size = start + size, 2 * size
    return stage, window_end


def prefer_dense(
    covariance: jax.Array, num_draws: jax.Array, *, factor: float = DENSE_FACTOR
) -> jax.Array:
    """Whether a dense covariance estimate is worth using over its diagonal.

    Args:
        covariance: Estimated covariance of the target, shape ``(d, d)``.
        num_draws: Number of draws it was estimated from (scalar).
        factor: How many times the Marchenko-Pastur condition number
            :math:`\\kappa_{MP}(d / n)` the condition number of the correlation
            matrix must exceed.

    Returns:
        Boolean scalar: :math:`\\kappa(R) > c\\,\\kappa_{MP}` with :math:`R` the
            correlation matrix of ``covariance`` (false whenever ``num_draws <= d``).
    """
    d = covariance.shape[-1]
    sd = jnp.sqrt(jnp.diagonal(covariance))
    eigenvalues = jnp.linalg.eigvalsh(covariance / jnp.outer(sd, sd))
    kappa = eigenvalues[-1] / jnp.maximum(eigenvalues[0], jnp.finfo(eigenvalues.dtype).tiny)
    root = jnp.sqrt(d / jnp.maximum(num_draws, 1))
    kappa_noise = jnp.where(root < 1, ((1 + root) / jnp.maximum(1 - root, 1e-12)) ** 2, jnp.inf)
    return kappa > factor * kappa_noise


def window_adaptation(
    *,
    is_mass_matrix_diagonal: bool = True,
    target_acceptance_rate: float = 0.8,
    select_dense: bool = False,
) -> tuple[Callable, Callable, Callable]:
    """Per-step window adaptation built from BlackJAX's pieces.

    Args:
        is_mass_matrix_diagonal: Adapt a diagonal (else dense) inverse mass matrix.
        target_acceptance_rate: Target of dual averaging (Stan's ``adapt_delta``).
        select_dense: With a dense matrix, keep each slow window's dense estimate
            only where :func:`prefer_dense` finds correlations beyond sampling
            noise, else its diagonal (still stored as a ``(d, d)`` matrix), per
            chain. The diagonal is exactly the estimate the diagonal adaptation
            would make from the same draws.

    Returns:
        ``(init, update, final)``:

            - ``init(num_dimensions, initial_step_size) -> WindowAdaptationState``
            - ``update(state, stage, window_end, position, acceptance_rate) -> state``
              (``stage`` and ``window_end`` from :func:`schedule`; jit/vmap safe)
            - ``final(state) -> state`` with the sampling step size and mass matrix in force.
    """
    if select_dense and is_mass_matrix_diagonal:
        raise ValueError("select_dense chooses between dense and diagonal: it needs a dense matrix")
    mm_init, mm_update, mm_final = mass_matrix_adaptation(is_mass_matrix_diagonal)
    da_init, da_update, da_final = dual_averaging_adaptation(target_acceptance_rate)

    def init(num_dimensions: int, initial_step_size: float = 1.0) -> WindowAdaptationState:
        mm_state = mm_init(num_dimensions)
        step_size = jnp.asarray(initial_step_size, dtype=jnp.result_type(float))
        return WindowAdaptationState(
            da_init(step_size), mm_state, step_size, mm_state.inverse_mass_matrix
        )

    def update(
        state: WindowAdaptationState,
        stage: jax.Array,
        window_end: jax.Array,
        position: Any,
        acceptance_rate: jax.Array,
    ) -> WindowAdaptationState:
        da_state = da_update(state.da_state, acceptance_rate)
        # Welford accumulates only in slow windows; the fast ones keep it untouched.
        mm_state = jax.lax.cond(
            stage == 1, lambda s: mm_update(s, position), lambda s: s, state.mm_state
        )
        state = WindowAdaptationState(
            da_state, mm_state, jnp.exp(da_state.log_step_size), state.inverse_mass_matrix
        )

        def end_window(s: WindowAdaptationState) -> WindowAdaptationState:
            mm = mm_final(s.mm_state)
            if select_dense:
                dense = mm.inverse_mass_matrix
                keep = prefer_dense(dense, s.mm_state.wc_state.sample_size)
                mm = mm._replace(
                    inverse_mass_matrix=jnp.where(keep, dense, jnp.diag(jnp.diagonal(dense)))
                )
            da = da_init(da_final(s.da_state))
            return WindowAdaptationState(da, mm, jnp.exp(da.log_step_size), mm.inverse_mass_matrix)

        return jax.lax.cond(window_end, end_window, lambda s: s, state)

    def final(state: WindowAdaptationState) -> WindowAdaptationState:
        step_size = jnp.exp(state.da_state.log_step_size_avg)
        return state._replace(
            step_size=step_size, inverse_mass_matrix=state.mm_state.inverse_mass_matrix
        )

    return init, update, final
