"""Networks as flat parameter vectors with pure apply functions.

Every method of the entry (NIW, MAML, Reptile, ProtoNet) works on a flat weight
vector ``theta`` of shape ``(D,)``: the NIW prior is a distribution over that
vector, and inner-loop updates are plain vector arithmetic. :func:`mlp`
builds the vector layout once and returns a :class:`Network` whose ``apply``
unflattens it on the fly (a reshape, free under ``jit``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = ["Network", "mlp"]

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
}


class Network(NamedTuple):
    """A network over a flat weight vector.

    Attributes:
        init: ``init(rng_key) -> theta`` with ``theta`` of shape ``(num_params,)``.
        apply: ``apply(theta, x) -> outputs``; ``x`` of shape ``(N, in_dim)``,
            outputs of shape ``(N, out_dim)``.
        num_params: ``D``, the length of ``theta``.
        sizes: Layer widths ``(in_dim, hidden..., out_dim)``.
        gauss_newton_diag: Optional ``gauss_newton_diag(theta, x, out_hessian) -> (D,)``,
            the diagonal of ``sum_n J_n^T H_n J_n`` with ``J_n`` the ``(out_dim, D)``
            Jacobian of the outputs at ``x[n]`` and ``H_n = out_hessian[n]`` of shape
            ``(out_dim, out_dim)``. ``None``: callers form per-example Jacobians.
    """

    init: Callable[..., jax.Array]
    apply: Callable[[jax.Array, jax.Array], jax.Array]
    num_params: int
    sizes: tuple[int, ...]
    gauss_newton_diag: Callable[[jax.Array, jax.Array, jax.Array], jax.Array] | None = None


def _init_layers(
    rng_key: jax.Array, sizes: Sequence[int], weight_scale: float | None
) -> list[dict[str, Any]]:
    layers = []
    keys = jax.random.split(rng_key, len(sizes) - 1)
    for key, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:]):
        if weight_scale is None:  # He-uniform
            bound = jnp.sqrt(6.0 / fan_in)
            w = jax.random.uniform(key, (fan_in, fan_out), minval=-bound, maxval=bound)
        else:
            w = weight_scale * jax.random.truncated_normal(key, -2.0, 2.0, (fan_in, fan_out))
        layers.append({"w": w, "b": jnp.zeros((fan_out,))})
    return layers


def mlp(
    sizes: Sequence[int], activation: str = "relu", *, weight_scale: float | None = None
) -> Network:
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]``.

    Args:
        sizes: Layer widths, at least ``(in_dim, out_dim)``; e.g. ``(1, 40, 40, 1)``.
        activation: ``"relu"``, ``"tanh"`` or ``"elu"`` between layers (none after
            the last one).
        weight_scale: Standard deviation of truncated-normal initial weights
            (Finn et al. use 0.01 for the sinusoid); ``None`` for He-uniform.
            Biases start at zero.

    Returns:
        The network, as a :class:`Network` over a flat weight vector.

    Raises:
        ValueError: Fewer than two sizes, a non-positive width or an unknown activation.
    """
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"mlp sizes must be at least two positive widths, got {sizes}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; use one of {sorted(_ACTIVATIONS)}")
    act = _ACTIVATIONS[activation]
    template = _init_layers(jax.random.key(0), sizes, weight_scale)
    flat, unravel = ravel_pytree(template)

    def init(rng_key: jax.Array) -> jax.Array:
        return ravel_pytree(_init_layers(rng_key, sizes, weight_scale))[0]

    def apply(theta: jax.Array, x: jax.Array) -> jax.Array:
        layers = unravel(theta)
        h = x
        for layer in layers[:-1]:
            h = act(h @ layer["w"] + layer["b"])
        return h @ layers[-1]["w"] + layers[-1]["b"]

    def gauss_newton_diag(theta: jax.Array, x: jax.Array, out_hessian: jax.Array) -> jax.Array:
        # The per-example gradient of output o in W_l is the outer product
        # h_{l-1,n} (x) delta^o_{l,n}, so sum_n sum_ab H_nab (h (x) delta^a)(h (x) delta^b),
        # squared elementwise, is (h^2)^T q with q_n = sum_ab H_nab delta^a_n delta^b_n:
        # one matrix product per layer instead of N backward passes.
        layers = unravel(theta)
        inputs, slopes, h = [], [], x
        for layer in layers[:-1]:
            z = h @ layer["w"] + layer["b"]
            inputs.append(h)
            h, slope = jax.jvp(act, (z,), (jnp.ones_like(z),))
            slopes.append(slope)
        inputs.append(h)
        out_dim = sizes[-1]
        # delta^o at the output layer: one-hot rows, shape (O, N, O)
        delta = jnp.broadcast_to(jnp.eye(out_dim)[:, None, :], (out_dim, x.shape[0], out_dim))
        diag = [None] * len(layers)
        for i in range(len(layers) - 1, -1, -1):
            q = jnp.einsum("nab,anj,bnj->nj", out_hessian, delta, delta)
            diag[i] = {"w": (inputs[i] ** 2).T @ q, "b": q.sum(0)}
            if i > 0:
                delta = (delta @ layers[i]["w"].T) * slopes[i - 1]
        return ravel_pytree(diag)[0]

    return Network(
        init=init,
        apply=apply,
        num_params=int(flat.shape[0]),
        sizes=sizes,
        gauss_newton_diag=gauss_newton_diag,
    )
