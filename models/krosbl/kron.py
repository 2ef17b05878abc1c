"""Kronecker algebra and the efficient SBL E-step.

Conventions: a dictionary ``A = A_1 kron A_2 kron ... kron A_I`` with factors
``A_i`` of shape ``(m_i, n_i)`` acts on ``x`` of length ``N = prod(n_i)``
reshaped in C order to a tensor ``X`` of shape ``(n_1, ..., n_I)``:

    (A_1 kron ... kron A_I) vec(X) = vec(X x_1 A_1 x_2 A_2 ... x_I A_I)

where ``x_i`` is the mode-i product and ``vec`` is the C-order ravel. Neither
``A`` nor any ``N x N`` matrix is ever formed.

E-step (Tipping's SBL posterior for ``x ~ N(0, diag(gamma))``,
``y = A x + n``, ``n ~ N(0, sigma2 I)``) with a Kronecker-structured
``gamma = gamma_1 kron ... kron gamma_I``: the eigendecompositions
``A_i diag(gamma_i) A_i^H = U_i diag(lambda_i) U_i^H`` diagonalize the
evidence covariance,

    C = sigma2 I + A Gamma A^H = U diag(D) U^H,   U = kron U_i,
    D = sigma2 + lambda_1 kron ... kron lambda_I,

so with ``B_i = U_i^H A_i`` the posterior mean and the diagonal of the
posterior covariance are mode products of ``M``-sized tensors:

    mu           = gamma * (kron B_i)^H (D^-1 * (kron U_i)^H y)
    diag(Sigma)  = gamma - gamma^2 * (kron |B_i|^2)^T D^-1

in ``O(N sum_i m_i)`` time and ``O(N + M + sum_i m_i n_i)`` memory. The
residual needs no product with ``A``: ``A mu = A Gamma A^H C^-1 y =
y - sigma2 C^-1 y``, so ``||y - A mu||^2 = sigma2^2 sum |(kron U_i)^H y / D|^2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "EStep",
    "dense_estep",
    "kron_dense",
    "kron_estep",
    "kron_matvec",
    "kron_vector",
    "mode_product",
]


class EStep(NamedTuple):
    """Posterior moments and evidence of the SBL model.

    Attributes:
        mean: Posterior mean ``mu``, shape ``(N,)``.
        var: Diagonal of the posterior covariance ``Sigma``, shape ``(N,)``.
        cost: ``log det C + y^H C^-1 y`` with ``C = sigma2 I + A Gamma A^H``:
            ``-log p(y)`` (complex data) or ``-2 log p(y)`` (real data) up to a
            constant; EM never increases it.
        residual: ``||y - A mu||^2``.
    """

    mean: jax.Array
    var: jax.Array
    cost: jax.Array
    residual: jax.Array


def mode_product(tensor: jax.Array, matrix: jax.Array, mode: int) -> jax.Array:
    """Mode-``mode`` product ``tensor x_mode matrix``.

    Args:
        tensor: Shape ``(..., n_mode, ...)``.
        matrix: Shape ``(p, n_mode)``.
        mode: Axis of ``tensor`` to contract.

    Returns:
        Shape of ``tensor`` with axis ``mode`` replaced by ``p``.
    """
    return jnp.moveaxis(jnp.tensordot(matrix, tensor, axes=(1, mode)), 0, mode)


def kron_matvec(factors: Sequence[jax.Array], x: jax.Array) -> jax.Array:
    """``(A_1 kron ... kron A_I) x`` by mode products.

    Args:
        factors: ``A_i`` of shape ``(m_i, n_i)``.
        x: Shape ``(prod n_i,)``.

    Returns:
        Shape ``(prod m_i,)``.
    """
    tensor = x.reshape(tuple(a.shape[1] for a in factors))
    for mode, a in enumerate(factors):
        tensor = mode_product(tensor, a, mode)
    return tensor.reshape(-1)


def kron_vector(vectors: Sequence[jax.Array]) -> jax.Array:
    """``v_1 kron ... kron v_I`` for vectors ``v_i`` of shape ``(n_i,)``."""
    out = vectors[0]
    for v in vectors[1:]:
        out = (out[:, None] * v[None, :]).reshape(-1)
    return out


def kron_dense(factors: Sequence[jax.Array]) -> jax.Array:
    """The full Kronecker product (for tests and the dense baseline only)."""
    out = factors[0]
    for a in factors[1:]:
        out = jnp.kron(out, a)
    return out


def _abs2(z: jax.Array) -> jax.Array:
    return jnp.real(z) ** 2 + jnp.imag(z) ** 2 if jnp.iscomplexobj(z) else z**2


def kron_estep(
    y: jax.Array,
    factors: Sequence[jax.Array],
    gammas: Sequence[jax.Array],
    noise_var: jax.Array | float,
) -> EStep:
    """Posterior mean and variances for a Kronecker-structured prior variance.

    Args:
        y: Measurements, shape ``(M,)`` with ``M = prod m_i`` (real or complex).
        factors: ``A_i``, shape ``(m_i, n_i)``.
        gammas: Nonnegative ``gamma_i``, shape ``(n_i,)``; the prior variance
            is ``gamma_1 kron ... kron gamma_I`` (zeros allowed: pruned entries).
        noise_var: ``sigma2 > 0``.

    Returns:
        The E-step, as an :class:`EStep` with ``mean`` and ``var`` of shape ``(N,)``.
    """
    shape_m = tuple(a.shape[0] for a in factors)
    us, bs, lams = [], [], []
    for a, g in zip(factors, gammas):
        gram = (a * g[None, :]) @ jnp.conj(a).T
        # The Gram matrix is Hermitian by construction: eigh reads one triangle.
        lam, u = jnp.linalg.eigh(gram, symmetrize_input=False)
        us.append(u)
        lams.append(jnp.clip(lam, 0.0, None))
        bs.append(jnp.conj(u).T @ a)
    d = noise_var + kron_vector(lams).reshape(shape_m)
    yt = y.reshape(shape_m)
    for mode, u in enumerate(us):
        yt = mode_product(yt, jnp.conj(u).T, mode)
    q = yt / d
    back = q
    for mode, b in enumerate(bs):
        back = mode_product(back, jnp.conj(b).T, mode)
    weights = 1.0 / d
    for mode, b in enumerate(bs):
        weights = mode_product(weights, _abs2(b).T, mode)
    gamma = kron_vector(gammas)
    mean = gamma * back.reshape(-1)
    var = jnp.clip(gamma - gamma**2 * weights.reshape(-1), 0.0, None)
    cost = jnp.sum(jnp.log(d)) + jnp.sum(_abs2(yt) / d)
    residual = noise_var**2 * jnp.sum(_abs2(q))
    return EStep(mean, var, cost, residual)


def dense_estep(
    y: jax.Array, dictionary: jax.Array, gamma: jax.Array, noise_var: jax.Array | float
) -> EStep:
    """The same posterior with a dense dictionary (classic SBL, ``O(M^2 N)``).

    Uses the ``M x M`` form ``Sigma = Gamma - Gamma A^H C^-1 A Gamma`` with a
    Cholesky factor of ``C = sigma2 I + A Gamma A^H``.

    Args:
        y: Shape ``(M,)``.
        dictionary: ``A``, shape ``(M, N)``.
        gamma: Prior variances, shape ``(N,)``.
        noise_var: ``sigma2 > 0``.
    """
    m = dictionary.shape[0]
    cov = (dictionary * gamma[None, :]) @ jnp.conj(dictionary).T
    cov = cov + noise_var * jnp.eye(m, dtype=cov.dtype)
    chol = jnp.linalg.cholesky(cov)
    solve = jax.scipy.linalg.cho_solve
    cy = solve((chol, True), y)
    ca = solve((chol, True), dictionary)
    mean = gamma * (jnp.conj(dictionary).T @ cy)
    quad = jnp.real(jnp.sum(jnp.conj(dictionary) * ca, axis=0))
    var = jnp.clip(gamma - gamma**2 * quad, 0.0, None)
    cost = 2.0 * jnp.sum(jnp.log(jnp.real(jnp.diagonal(chol)))) + jnp.real(jnp.vdot(y, cy))
    residual = jnp.sum(_abs2(y - dictionary @ mean))
    return EStep(mean, var, cost, residual)
