r"""The Normal-Inverse-Wishart distribution: KL divergence and expectations.

``NIW(m, kappa, Psi, n)`` is the law of ``(mu, Sigma)`` with

.. math::

    \Sigma \sim \mathcal{IW}(\Psi, n), \qquad \mu \mid \Sigma \sim \mathcal N(m, \Sigma / \kappa).

Two forms share one :class:`NIW` tuple:

- full: ``psi`` of shape ``(D, D)`` (positive definite, ``n > D - 1``);
- diagonal: ``psi`` of shape ``(D,)``, meaning a product of ``D`` independent
  one-dimensional NIWs (Normal-Inverse-Gamma: ``Sigma_jj ~ InvGamma(n/2, psi_j/2)``)
  with shared ``kappa`` and ``n > 0``. This is the form used for network weights.

In both forms :math:`E[\Sigma^{-1}] = n \Psi^{-1}`, the quantity the closed-form
local update uses.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln, multigammaln

__all__ = ["NIW", "expected_log_det", "expected_precision", "niw_kl", "niw_mode"]


class NIW(NamedTuple):
    """Parameters of a Normal-Inverse-Wishart distribution.

    Attributes:
        mean: ``m``, shape ``(D,)``.
        kappa: ``kappa > 0``, scalar: precision multiplier of ``mu | Sigma``.
        psi: Scale ``Psi``, shape ``(D, D)`` (full) or ``(D,)`` (diagonal form).
        dof: Degrees of freedom ``n`` (``n > D - 1`` full, ``n > 0`` diagonal).
    """

    mean: jax.Array
    kappa: jax.Array
    psi: jax.Array
    dof: jax.Array


def _is_diag(niw: NIW) -> bool:
    return jnp.ndim(niw.psi) == 1


def expected_precision(niw: NIW) -> jax.Array:
    r""":math:`E[\Sigma^{-1}] = n \Psi^{-1}`: shape ``(D,)`` (diagonal) or ``(D, D)``."""
    if _is_diag(niw):
        return niw.dof / niw.psi
    return niw.dof * jnp.linalg.inv(niw.psi)


def expected_log_det(niw: NIW) -> jax.Array:
    r""":math:`E[\log|\Sigma|] = \log|\Psi| - D \log 2 - \psi_D(n/2)` (multivariate digamma)."""
    d = niw.mean.shape[-1]
    if _is_diag(niw):
        return jnp.sum(jnp.log(niw.psi)) - d * (jnp.log(2.0) + digamma(niw.dof / 2))
    half = (niw.dof + 1 - jnp.arange(1, d + 1)) / 2
    return jnp.linalg.slogdet(niw.psi)[1] - d * jnp.log(2.0) - jnp.sum(digamma(half))


def niw_mode(niw: NIW) -> tuple[jax.Array, jax.Array]:
    r"""Mode of ``(mu, Sigma)``: ``(m, Psi / (n + D + 1))`` (full) or ``(m, psi / (n + 2))``.

    Returns:
        ``(mu, Sigma)``; ``Sigma`` of the same shape as ``psi`` (a diagonal when ``psi`` is).
    """
    d = niw.mean.shape[-1]
    if _is_diag(niw):
        return niw.mean, niw.psi / (niw.dof + 2)
    return niw.mean, niw.psi / (niw.dof + d + 1)


def niw_kl(q: NIW, p: NIW) -> jax.Array:
    r"""``KL(q || p)`` between two NIWs of the same form and dimension.

    With :math:`\Delta = m_q - m_p`,

    .. math::

        \mathrm{KL} = \tfrac{n_p}{2}(\log|\Psi_q| - \log|\Psi_p|)
            + \log\Gamma_D(\tfrac{n_p}{2}) - \log\Gamma_D(\tfrac{n_q}{2})
            + \tfrac{n_q - n_p}{2}\psi_D(\tfrac{n_q}{2})
            + \tfrac{n_q}{2}(\mathrm{tr}(\Psi_p\Psi_q^{-1}) - D)
            + \tfrac{1}{2}\big(D\tfrac{\kappa_p}{\kappa_q} - D + D\log\tfrac{\kappa_q}{\kappa_p}
            + \kappa_p n_q \Delta^\top\Psi_q^{-1}\Delta\big),

    the Inverse-Wishart KL plus the expected KL of the conditional Normals. The
    diagonal form sums the one-dimensional expression over coordinates.

    Args:
        q: First NIW.
        p: Second NIW.

    Returns:
        Scalar KL divergence (nats).

    Raises:
        ValueError: The two do not have the same form and dimension.
    """
    if jnp.shape(q.psi) != jnp.shape(p.psi) or jnp.shape(q.mean) != jnp.shape(p.mean):
        raise ValueError(
            f"NIW shapes differ: psi {jnp.shape(q.psi)} vs {jnp.shape(p.psi)}, "
            f"mean {jnp.shape(q.mean)} vs {jnp.shape(p.mean)}"
        )
    delta = q.mean - p.mean
    d = q.mean.shape[-1]
    normal = 0.5 * d * (p.kappa / q.kappa - 1 + jnp.log(q.kappa / p.kappa))
    if _is_diag(q):
        per_dim = (
            0.5 * p.dof * (jnp.log(q.psi) - jnp.log(p.psi))
            + gammaln(p.dof / 2)
            - gammaln(q.dof / 2)
            + 0.5 * (q.dof - p.dof) * digamma(q.dof / 2)
            + 0.5 * q.dof * (p.psi / q.psi - 1)
        )
        quad = jnp.sum(delta**2 / q.psi)
        return jnp.sum(per_dim) + normal + 0.5 * p.kappa * q.dof * quad
    half = (q.dof + 1 - jnp.arange(1, d + 1)) / 2
    chol_q = jnp.linalg.cholesky(q.psi)
    solve = lambda b: jax.scipy.linalg.cho_solve((chol_q, True), b)  # noqa: E731
    iw = (
        0.5 * p.dof * (jnp.linalg.slogdet(q.psi)[1] - jnp.linalg.slogdet(p.psi)[1])
        + multigammaln(p.dof / 2, d)
        - multigammaln(q.dof / 2, d)
        + 0.5 * (q.dof - p.dof) * jnp.sum(digamma(half))
        + 0.5 * q.dof * (jnp.trace(solve(p.psi)) - d)
    )
    return iw + normal + 0.5 * p.kappa * q.dof * delta @ solve(delta)
