"""Kronecker orthogonal matching pursuit (greedy baseline).

Each iteration correlates the residual with every normalized Kronecker atom
``a_{1,k_1} kron ... kron a_{I,k_I}`` through mode products (the correlation
tensor is ``r x_1 A_1^H ... x_I A_I^H``), adds the per-mode indices of the
best atom to the mode supports ``S_i``, and refits by least squares on the
Kronecker support ``S_1 x ... x S_I``, whose solution is again Kronecker:
``x_S = (pinv(A_1[:, S_1]) kron ... kron pinv(A_I[:, S_I])) y``. A mode whose
support already holds ``sparsity[i]`` indices only admits atoms inside it.
It stops when every mode is full, when ``||r||^2 <= M sigma2``, or after
``sum(sparsity)`` iterations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .kron import kron_matvec, kron_vector

__all__ = ["KOMPOutput", "run_komp"]


class KOMPOutput(NamedTuple):
    """Result of :func:`run_komp`.

    Attributes:
        mean: Least-squares estimate on the selected support, shape ``(N,)``.
        masks: Selected indices per mode, boolean ``(n_i,)``.
        num_iterations: Atoms selected.
        converged: Whether it stopped on the noise level or full supports
            (rather than the iteration cap).
    """

    mean: jax.Array
    masks: tuple[jax.Array, ...]
    num_iterations: jax.Array
    converged: jax.Array


class _State(NamedTuple):
    masks: tuple[jax.Array, ...]
    mean: jax.Array
    residual: jax.Array
    iteration: jax.Array


def run_komp(
    y: jax.Array,
    factors: Sequence[jax.Array],
    sparsity: Sequence[int],
    noise_var: jax.Array | float = 0.0,
) -> KOMPOutput:
    """Kronecker OMP (pure; ``jit`` with ``sparsity`` static).

    Args:
        y: Shape ``(M,)``.
        factors: ``A_i``, shape ``(m_i, n_i)``.
        sparsity: Maximum support size per mode.
        noise_var: Stop once ``||r||^2 <= M * noise_var`` (0: never).
    """
    factors = tuple(factors)
    sizes = tuple(a.shape[1] for a in factors)
    norms = kron_vector([jnp.linalg.norm(a, axis=0) for a in factors]).reshape(sizes)
    adjoints = [jnp.conj(a).T for a in factors]
    threshold = y.shape[0] * noise_var
    max_iter = int(sum(sparsity))

    def step(state: _State) -> _State:
        corr = jnp.abs(kron_matvec(adjoints, state.residual).reshape(sizes)) / norms
        for i, (mask, k) in enumerate(zip(state.masks, sparsity)):
            shape = [1] * len(sizes)
            shape[i] = sizes[i]
            allowed = jnp.where(jnp.sum(mask) >= k, mask, True).reshape(shape)
            corr = jnp.where(allowed, corr, -1.0)
        best = jnp.unravel_index(jnp.argmax(corr), sizes)
        masks = tuple(m.at[b].set(True) for m, b in zip(state.masks, best))
        pinvs = [jnp.linalg.pinv(a * m[None, :]) for a, m in zip(factors, masks)]
        mean = kron_matvec(pinvs, y) * kron_vector([m.astype(y.real.dtype) for m in masks])
        residual = y - kron_matvec(factors, mean)
        return _State(masks, mean, residual, state.iteration + 1)

    def full(state: _State) -> jax.Array:
        return jnp.all(jnp.array([jnp.sum(m) >= k for m, k in zip(state.masks, sparsity)]))

    def small(state: _State) -> jax.Array:
        return jnp.sum(jnp.abs(state.residual) ** 2) <= threshold

    def cond(state: _State) -> jax.Array:
        return (state.iteration < max_iter) & ~full(state) & ~small(state)

    state0 = _State(
        tuple(jnp.zeros(n, bool) for n in sizes),
        jnp.zeros(math.prod(sizes), y.dtype),
        y,
        jnp.asarray(0),
    )
    state = jax.lax.while_loop(cond, step, state0)
    return KOMPOutput(state.mean, state.masks, state.iteration, full(state) | small(state))
