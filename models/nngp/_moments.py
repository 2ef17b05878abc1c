"""Closed-form Gaussian expectations of the ReLU and erf activations.

For a centred Gaussian pair ``(u, v)`` with covariance
``[[K11, K12], [K12, K22]]`` the NNGP and NTK recursions need ``E[phi(u) phi(v)]``
and ``E[phi'(u) phi'(v)]``; their closed forms are listed in the docstring of
:mod:`bayes.models.nngp.kernels`.

Both moment functions take the per-point factors of :func:`diag_roots` rather than
the diagonals, so that the square roots are computed once per point, not once per
pair. ``arccos`` is evaluated by a polynomial (:func:`_acos_and_sin`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["diag_roots", "moments_fn"]


def _asin_series(degree: int = 16) -> tuple[float, ...]:
    """Coefficients of ``p(z) ~ asin(sqrt z) / sqrt z`` on ``z in [0, 1/2]`` (low order first).

    Chebyshev interpolation of the analytic function (nearest singularity at ``z = 1``),
    converted to powers of ``z``; degree 16 is accurate to ~3e-15 absolute in ``asin``.
    """
    cheb, poly = np.polynomial.chebyshev, np.polynomial.polynomial
    nodes = np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1))
    z = 0.25 * (1 + nodes)
    coef = cheb.cheb2poly(cheb.chebfit(nodes, np.arcsin(np.sqrt(z)) / np.sqrt(z), degree))
    out = np.zeros(1)
    for k, a in enumerate(coef):  # substitute u = 4 z - 1
        out = poly.polyadd(out, a * poly.polypow([-1.0, 4.0], k))
    return tuple(float(v) for v in out)


_ASIN_SERIES = _asin_series()


def _acos_and_sin(rho):
    """``(arccos rho, sqrt(1 - rho^2))`` by a polynomial, vectorised and fusable.

    With ``z = (1 - |rho|) / 2``, ``arccos |rho| = 2 asin(sqrt z)`` and
    ``sqrt(1 - rho^2) = 2 sqrt(z (1 - z))``; ``asin(sqrt z) = sqrt(z) p(z)`` with a
    degree-16 polynomial on ``z in [0, 1/2]`` (absolute error below 1e-14 in
    float64). XLA evaluates the polynomial in registers, several times faster than
    its element-wise ``arccos``, which dominated the kernel's cost.

    Args:
        rho: Correlations in ``[-1, 1]``, any shape.

    Returns:
        ``(theta, sine)`` of ``rho``'s shape.
    """
    z = 0.5 * (1 - jnp.abs(rho))
    p = jnp.full_like(z, _ASIN_SERIES[-1])
    for a in _ASIN_SERIES[-2::-1]:
        p = p * z + a
    root = jnp.sqrt(z)
    half = root * p
    theta = jnp.where(rho >= 0, 2 * half, jnp.pi - 2 * half)
    return theta, 2 * root * jnp.sqrt(1 - z)


def _relu_moments(s1, s2, k12, derivative: bool):
    # s1, s2 are sqrt(K11), sqrt(K22). arccos has an infinite slope at +-1 (the
    # diagonal): clipping keeps gradients finite and changes the kernel by O(eps^1.5),
    # far below the dtype's resolution.
    eps = 10 * jnp.finfo(k12.dtype).eps
    inv1 = jnp.where(s1 > 0, 1 / jnp.where(s1 > 0, s1, 1.0), 0.0)
    inv2 = jnp.where(s2 > 0, 1 / jnp.where(s2 > 0, s2, 1.0), 0.0)
    rho = jnp.clip(k12 * inv1 * inv2, -1.0 + eps, 1.0 - eps)
    theta, sine = _acos_and_sin(rho)
    value = s1 * s2 * (sine + (jnp.pi - theta) * rho) / (2 * jnp.pi)
    if not derivative:
        return value, None
    return value, (jnp.pi - theta) / (2 * jnp.pi)


def _erf_moments(s1, s2, k12, derivative: bool):
    # s1, s2 are sqrt(1 + 2 K11), sqrt(1 + 2 K22)
    value = (2 / jnp.pi) * jnp.arcsin(2 * k12 / (s1 * s2))
    if not derivative:
        return value, None
    return value, (4 / jnp.pi) / jnp.sqrt((s1 * s2) ** 2 - 4 * k12**2)


def moments_fn(activation: str):
    """``(value, derivative)`` moments function of ``activation`` (see the module docstring)."""
    return _relu_moments if activation == "relu" else _erf_moments


def diag_roots(diag, activation: str):
    """Per-point factors of the moments: ``sqrt(K)`` (ReLU) or ``sqrt(1 + 2K)`` (erf)."""
    return jnp.sqrt(diag) if activation == "relu" else jnp.sqrt(1 + 2 * diag)
