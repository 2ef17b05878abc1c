"""Fully connected networks on a flat parameter vector, with fan-in scaled Gaussian priors.

A network is described by a hashable :class:`MLPConfig`; its parameters are
one flat vector ``w`` of length :func:`num_params` (layer by layer: weight
matrix row-major, then bias), which is what HMC, VI and optax work on. The
prior is

.. math::

    W^l_{ij} \\sim N(0, \\sigma_w^2 / n_{l-1}), \\qquad b^l_j \\sim N(0, \\sigma_b^2),

with ``n_{l-1}`` the fan-in of layer ``l``, so the prior over functions keeps
its scale as the width grows (the scaling under which the network tends to
the NNGP of :mod:`bayes.models.nngp`).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ACTIVATIONS",
    "MLPConfig",
    "apply",
    "init_params",
    "num_params",
    "prior_logdensity",
    "prior_scales",
]

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "erf": jax.scipy.special.erf,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
}


class MLPConfig(NamedTuple):
    """Architecture of a fully connected network (hashable: a static argument).

    Attributes:
        in_dim: Input dimension ``d``.
        out_dim: Output dimension ``m``.
        width: Units per hidden layer.
        depth: Number of hidden layers (0: a linear model).
        activation: One of :data:`ACTIVATIONS`.
    """

    in_dim: int
    out_dim: int
    width: int = 50
    depth: int = 2
    activation: str = "tanh"

    def check(self) -> MLPConfig:
        """Return self, or raise ValueError naming the bad field."""
        for name in ("in_dim", "out_dim", "width"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.depth, int | np.integer) or self.depth < 0:
            raise ValueError(f"depth must be a non-negative integer, got {self.depth!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; use one of {', '.join(ACTIVATIONS)}"
            )
        return self


def _layers(config: MLPConfig) -> list[tuple[int, int]]:
    sizes = [config.in_dim] + [config.width] * config.depth + [config.out_dim]
    return list(itertools.pairwise(sizes))


def num_params(config: MLPConfig) -> int:
    """Length of the flat parameter vector."""
    return sum(n_in * n_out + n_out for n_in, n_out in _layers(config))


def prior_scales(
    config: MLPConfig,
    *,
    weight_scale: float = 1.0,
    bias_scale: float = 1.0,
    input_scale: float | None = None,
) -> np.ndarray:
    """Prior standard deviation of every parameter, shape ``(num_params,)``.

    ``input_scale`` (default ``weight_scale``) replaces ``sigma_w`` in the first
    layer: with inputs in ``[-1, 1]^d`` a larger value lets the prior put mass
    on functions that vary within the box rather than nearly linear ones.
    """
    parts = []
    for i, (n_in, n_out) in enumerate(_layers(config)):
        scale = weight_scale if (i > 0 or input_scale is None) else input_scale
        parts.append(np.full(n_in * n_out, scale / math.sqrt(n_in)))
        parts.append(np.full(n_out, bias_scale))
    return np.concatenate(parts)


def apply(config: MLPConfig, w: jax.Array, x: jax.Array) -> jax.Array:
    """Network outputs.

    Args:
        config: Architecture.
        w: Flat parameters, shape ``(num_params,)``.
        x: Inputs, shape ``(n, in_dim)``.

    Returns:
        Outputs, shape ``(n, out_dim)``.
    """
    phi = ACTIVATIONS[config.activation]
    h, start = x, 0
    layers = _layers(config)
    for i, (n_in, n_out) in enumerate(layers):
        weight = w[start : start + n_in * n_out].reshape(n_in, n_out)
        start += n_in * n_out
        bias = w[start : start + n_out]
        start += n_out
        h = h @ weight + bias
        if i < len(layers) - 1:
            h = phi(h)
    return h


def prior_logdensity(w: jax.Array, scales: jax.Array) -> jax.Array:
    """Log-density of the Gaussian prior with standard deviations ``scales`` (scalar)."""
    z = w / scales
    return -0.5 * jnp.sum(z**2) - jnp.sum(jnp.log(scales)) - 0.5 * z.size * math.log(2 * math.pi)


def init_params(
    config: MLPConfig,
    *,
    rng_key: jax.Array,
    weight_scale: float = 1.0,
    bias_scale: float = 1.0,
    input_scale: float | None = None,
) -> jax.Array:
    """A draw from the prior, shape ``(num_params,)``."""
    scales = prior_scales(config, weight_scale=weight_scale, bias_scale=bias_scale,
                          input_scale=input_scale)  # fmt: skip
    return jnp.asarray(scales) * jax.random.normal(rng_key, scales.shape)
