"""Synthetic Kronecker-supported sparse recovery problems (``vmap``-able)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .kron import kron_matvec, kron_vector

__all__ = ["Problem", "add_noise", "nmse", "simulate_problem"]


class Problem(NamedTuple):
    """A draw of ``y = (A_1 kron ... kron A_I) x + n``.

    Attributes:
        y: Measurements, shape ``(M,)``.
        factors: ``A_i``, shape ``(m_i, n_i)``.
        x: True signal, shape ``(N,)``, nonzero only on ``support``.
        support: Boolean ``(N,)``, the Kronecker product of the mode supports.
        noise_var: Noise variance ``sigma2`` giving the requested SNR.
    """

    y: jax.Array
    factors: tuple[jax.Array, ...]
    x: jax.Array
    support: jax.Array
    noise_var: jax.Array


def _normal(key: jax.Array, shape: tuple[int, ...], is_complex: bool, dtype) -> jax.Array:
    if not is_complex:
        return jax.random.normal(key, shape, dtype)
    kr, ki = jax.random.split(key)
    re, im = jax.random.normal(kr, shape, dtype), jax.random.normal(ki, shape, dtype)
    return (re + 1j * im) / jnp.sqrt(2.0)


def add_noise(
    clean: jax.Array, snr_db: jax.Array | float, *, rng_key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Add white Gaussian noise at ``SNR = ||clean||^2 / (M sigma2)`` (in dB).

    Returns:
        ``(y, sigma2)``; complex noise is circular with ``E|n_j|^2 = sigma2``.
    """
    power = jnp.mean(jnp.abs(clean) ** 2)
    noise_var = power / 10.0 ** (jnp.asarray(snr_db) / 10.0)
    noise = _normal(rng_key, clean.shape, jnp.iscomplexobj(clean), jnp.real(clean).dtype)
    return clean + jnp.sqrt(noise_var) * noise, noise_var


def simulate_problem(
    sizes: Sequence[int],
    measurements: Sequence[int],
    sparsity: Sequence[int],
    snr_db: jax.Array | float,
    *,
    rng_key: jax.Array,
    is_complex: bool = False,
) -> Problem:
    """Gaussian factors and a signal with Kronecker support and Gaussian values.

    Entries of ``A_i`` are ``N(0, 1/m_i)``; each mode's support is ``sparsity[i]``
    indices drawn without replacement; the nonzeros of ``x`` are independent
    ``N(0, 1)`` (or ``CN(0, 1)``).

    Args:
        sizes: ``(n_1, ..., n_I)``.
        measurements: ``(m_1, ..., m_I)``.
        sparsity: Nonzeros per mode ``(k_1, ..., k_I)``.
        snr_db: Measurement SNR in dB.
        rng_key: PRNG key.
        is_complex: Complex factors, signal and noise.
    """
    dtype = jnp.zeros(()).dtype
    keys = jax.random.split(rng_key, 2 * len(sizes) + 2)
    factors, masks = [], []
    for i, (n, m, k) in enumerate(zip(sizes, measurements, sparsity)):
        factors.append(_normal(keys[i], (m, n), is_complex, dtype) / jnp.sqrt(m))
        idx = jax.random.permutation(keys[len(sizes) + i], n)[:k]
        masks.append(jnp.zeros(n, dtype).at[idx].set(1.0))
    support = kron_vector(masks) > 0
    n_total = support.shape[0]
    x = jnp.where(support, _normal(keys[-2], (n_total,), is_complex, dtype), 0.0)
    y, noise_var = add_noise(kron_matvec(factors, x), snr_db, rng_key=keys[-1])
    return Problem(y, tuple(factors), x, support, noise_var)


def nmse(estimate: jax.Array, truth: jax.Array) -> jax.Array:
    """``||estimate - truth||^2 / ||truth||^2`` over the last axis."""
    err = jnp.sum(jnp.abs(estimate - truth) ** 2, axis=-1)
    return err / jnp.sum(jnp.abs(truth) ** 2, axis=-1)
