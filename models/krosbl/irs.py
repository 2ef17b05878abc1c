"""IRS-aided MIMO uplink: cascaded-channel measurements with Kronecker structure.

Uniform linear arrays with steering vectors ``a_L(u)[n] = exp(j pi n u)``,
``n = 0..L-1``, where ``u`` is the cosine of the angle, on grids of ``G``
points ``u_g = -1 + 2 g / G``. The MS-IRS and IRS-BS channels have one angle
of departure and a cluster of ``cluster_size`` adjacent arrival angles each,
with ``CN(0, 1/cluster_size)`` gains:

    H_1 = sum_p g_{1p} a_IRS(u_p) a_MS(v)^H          (IRS x MS)
    H_2 = sum_q g_{2q} a_BS(w_q) a_IRS(s)^H          (BS x IRS)

With QPSK pilots ``X`` (MS x T) and IRS phase patterns ``theta_k``
(``k = 1..K``), the BS receives ``Y_k = H_2 diag(theta_k) H_1 X + N_k``. As
``a_IRS(s)^* * a_IRS(u) = a_IRS(u - s)`` (periodic in ``u``), the measurement
tensor ``Y[k, t, b] = Y_k[b, t]`` is

    vec(Y) = (Phi_1 kron Phi_2 kron Phi_3) z + n,
    Phi_1 = Theta^T A_IRS (K x G),  Phi_2 = X^T conj(A_MS) (T x G),  Phi_3 = A_BS (N_BS x G),

with ``z[c, v, w]`` the angular cascaded channel: nonzero on (cluster of
cascaded IRS angles ``u_p - s``) x (one MS angle) x (cluster of BS angles), a
Kronecker support that is block sparse in modes 0 and 2.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .data import add_noise
from .kron import kron_matvec, kron_vector, mode_product

__all__ = [
    "IRSConfig",
    "IRSProblem",
    "cascaded_channel_nmse",
    "cascaded_channels",
    "irs_physical_measurements",
    "simulate_irs",
    "symbol_error_rate",
]


class IRSConfig(NamedTuple):
    """Sizes of the IRS-MIMO system (defaults as in the paper: M = 288, N = 18^3).

    Attributes:
        num_ms: MS antennas.
        num_bs: BS antennas.
        num_irs: IRS elements.
        grid: Angular grid points per mode (even, so cascaded angles stay on it).
        num_pilots: Pilot time slots ``T`` per IRS pattern.
        num_patterns: IRS phase patterns ``K``.
        cluster_size: Adjacent arrival angles per link.
    """

    num_ms: int = 6
    num_bs: int = 16
    num_irs: int = 256
    grid: int = 18
    num_pilots: int = 3
    num_patterns: int = 6
    cluster_size: int = 3


class IRSProblem(NamedTuple):
    """One channel draw and its pilot measurements.

    Attributes:
        y: ``vec(Y)``, shape ``(K * T * num_bs,)``.
        factors: ``(Phi_1, Phi_2, Phi_3)``.
        z: Angular cascaded channel, shape ``(G^3,)``.
        support: Boolean ``(G^3,)``.
        noise_var: Noise variance for the requested SNR.
        h1: MS-IRS channel, ``(num_irs, num_ms)``.
        h2: IRS-BS channel, ``(num_bs, num_irs)``.
        pilots: ``X``, ``(num_ms, T)``.
        patterns: ``Theta``, ``(num_irs, K)``.
    """

    y: jax.Array
    factors: tuple[jax.Array, jax.Array, jax.Array]
    z: jax.Array
    support: jax.Array
    noise_var: jax.Array
    h1: jax.Array
    h2: jax.Array
    pilots: jax.Array
    patterns: jax.Array


def _steer(num: int, u: jax.Array) -> jax.Array:
    """Steering vectors as columns, shape ``(num, len(u))``."""
    return jnp.exp(1j * jnp.pi * jnp.arange(num)[:, None] * u[None, :])


def _cn(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    kr, ki = jax.random.split(key)
    return (jax.random.normal(kr, shape) + 1j * jax.random.normal(ki, shape)) / jnp.sqrt(2.0)


def simulate_irs(
    snr_db: jax.Array | float, *, rng_key: jax.Array, config: IRSConfig | None = None
) -> IRSProblem:
    """Draw channels, pilots and IRS patterns, and measure at ``snr_db``.

    Args:
        snr_db: ``10 log10(||clean y||^2 / (M sigma2))``.
        rng_key: PRNG key (``vmap`` over keys for many trials).
        config: :class:`IRSConfig` (static).

    Returns:
        The problem, as an :class:`IRSProblem`.
    """
    c = config if config is not None else IRSConfig()
    if c.grid % 2:
        raise ValueError(f"grid must be even so that cascaded angles stay on it; got {c.grid}")
    if not 1 <= c.cluster_size <= c.grid:
        raise ValueError(f"cluster_size must be in 1..grid; got {c.cluster_size}")
    g = c.grid
    grid = -1.0 + 2.0 * jnp.arange(g) / g
    keys = jax.random.split(rng_key, 9)
    start_c = jax.random.randint(keys[0], (), 0, g - c.cluster_size + 1)
    start_w = jax.random.randint(keys[1], (), 0, g - c.cluster_size + 1)
    v = jax.random.randint(keys[2], (), 0, g)
    s = jax.random.randint(keys[3], (), 0, g)
    casc = start_c + jnp.arange(c.cluster_size)
    bs_idx = start_w + jnp.arange(c.cluster_size)
    # Physical IRS arrival angles whose difference with s is the cascaded angle.
    irs_idx = (casc + s - g // 2) % g
    g1 = _cn(keys[4], (c.cluster_size,)) / jnp.sqrt(c.cluster_size)
    g2 = _cn(keys[5], (c.cluster_size,)) / jnp.sqrt(c.cluster_size)
    a_irs, a_ms, a_bs = _steer(c.num_irs, grid), _steer(c.num_ms, grid), _steer(c.num_bs, grid)
    h1 = (a_irs[:, irs_idx] * g1[None, :]).sum(axis=1)[:, None] * jnp.conj(a_ms[:, v])[None, :]
    h2 = (a_bs[:, bs_idx] * g2[None, :]).sum(axis=1)[:, None] * jnp.conj(a_irs[:, s])[None, :]
    qpsk = jnp.array([1 + 1j, 1 - 1j, -1 + 1j, -1 - 1j]) / jnp.sqrt(2.0)
    pilots = qpsk[jax.random.randint(keys[6], (c.num_ms, c.num_pilots), 0, 4)]
    patterns = jnp.exp(2j * jnp.pi * jax.random.uniform(keys[7], (c.num_irs, c.num_patterns)))
    factors = (patterns.T @ a_irs, pilots.T @ jnp.conj(a_ms), a_bs)
    z = kron_vector(
        [jnp.zeros(g, complex).at[casc].set(g1), jnp.zeros(g, complex).at[v].set(1.0),
         jnp.zeros(g, complex).at[bs_idx].set(g2)]
    )  # fmt: skip
    y, noise_var = add_noise(kron_matvec(factors, z), snr_db, rng_key=keys[8])
    return IRSProblem(y, factors, z, jnp.abs(z) > 0, noise_var, h1, h2, pilots, patterns)


def irs_physical_measurements(problem: IRSProblem) -> jax.Array:
    """Noise-free ``Y[k, t, b] = (H_2 diag(theta_k) H_1 X)[b, t]`` from the channel matrices.

    Returns:
        Shape ``(K, T, num_bs)``; equals the Kronecker model without noise.
    """
    cascaded = jnp.einsum("bn,nk,nm->kbm", problem.h2, problem.patterns, problem.h1)
    return jnp.einsum("kbm,mt->ktb", cascaded, problem.pilots)


def cascaded_channels(z: jax.Array, problem: IRSProblem) -> jax.Array:
    """Cascaded channels ``G_k = H_2 diag(theta_k) H_1`` of the training patterns from ``z``.

    ``G_k = A_BS Z_k A_MS^H`` with ``Z_k[w, v] = sum_c Phi_1[k, c] z[c, v, w]``,
    as mode products of the ``(G, G, G)`` tensor of ``z``.

    Args:
        z: Angular cascaded channel, shape ``(G^3,)``.
        problem: The :class:`IRSProblem` (patterns, array sizes).

    Returns:
        Shape ``(K, num_bs, num_ms)``; equals ``H_2 diag(theta_k) H_1`` for the true ``z``.
    """
    phi1 = problem.factors[0]
    grid = phi1.shape[1]
    u = -1.0 + 2.0 * jnp.arange(grid) / grid
    num_bs, num_ms = problem.h2.shape[0], problem.h1.shape[1]
    tensor = z.reshape(grid, grid, grid)
    for mode, a in enumerate((phi1, jnp.conj(_steer(num_ms, u)), _steer(num_bs, u))):
        tensor = mode_product(tensor, a, mode)
    return jnp.swapaxes(tensor, 1, 2)


def cascaded_channel_nmse(z_hat: jax.Array, problem: IRSProblem) -> jax.Array:
    """NMSE of the cascaded channels of the training IRS patterns (the paper's metric).

    ``(1/K) sum_k ||G_k(z_hat) - G_k(z)||_F^2 / ||G_k(z)||_F^2`` with ``G_k``
    from :func:`cascaded_channels`. Directions of ``z`` that no training
    pattern sees (the null space of ``Phi_1``) do not count, unlike in
    ``||z_hat - z||^2 / ||z||^2``.

    Args:
        z_hat: Estimated angular channel, shape ``(G^3,)``.
        problem: The :class:`IRSProblem` it was estimated from.

    Returns:
        Scalar NMSE.
    """
    truth, est = cascaded_channels(problem.z, problem), cascaded_channels(z_hat, problem)
    err = jnp.sum(jnp.abs(est - truth) ** 2, axis=(1, 2))
    return jnp.mean(err / jnp.sum(jnp.abs(truth) ** 2, axis=(1, 2)))


def symbol_error_rate(
    z_hat: jax.Array,
    problem: IRSProblem,
    *,
    rng_key: jax.Array,
    num_symbols: int = 2000,
    config: IRSConfig | None = None,
) -> jax.Array:
    """QPSK symbol error rate of data detected with an estimated channel.

    The IRS keeps pattern 0; the MS beamforms a unit-power QPSK stream along
    the leading right singular vector ``f`` of the estimated effective channel
    ``H_hat = H_2 diag(theta_0) H_1`` (rebuilt from ``z_hat``); the BS receives
    ``r = H f s + n`` with the true channel and noise ``CN(0, sigma2 I)`` of the
    pilot phase, and detects ``s`` from ``(H_hat f)^H r``.

    Args:
        z_hat: Estimated angular channel, shape ``(G^3,)``.
        problem: The :class:`IRSProblem` it was estimated from.
        rng_key: PRNG key for the symbols and the noise.
        num_symbols: QPSK symbols sent.
        config: Unused (the grid is read off ``problem``); kept for callers
            that pass it.

    Returns:
        Fraction of wrongly detected symbols.
    """
    del config
    h_true = cascaded_channels(problem.z, problem)[0]
    h_hat = cascaded_channels(z_hat, problem)[0]
    _, _, vh = jnp.linalg.svd(h_hat)
    f = jnp.conj(vh[0])
    h, h_est = h_true @ f, h_hat @ f
    k_sym, k_noise = jax.random.split(rng_key)
    bits = jax.random.bernoulli(k_sym, 0.5, (2, num_symbols))
    sym = ((1 - 2 * bits[0]) + 1j * (1 - 2 * bits[1])) / jnp.sqrt(2.0)
    noise = _cn(k_noise, (h.shape[0], num_symbols)) * jnp.sqrt(problem.noise_var)
    stat = jnp.conj(h_est) @ (h[:, None] * sym[None, :] + noise)
    wrong_re = jnp.sign(stat.real) != jnp.sign(sym.real)
    wrong = wrong_re | (jnp.sign(stat.imag) != jnp.sign(sym.imag))
    return jnp.mean(wrong)
