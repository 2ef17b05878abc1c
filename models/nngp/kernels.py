"""NNGP and NTK kernels of infinitely wide fully connected networks, in pure JAX.

A network of ``depth`` hidden layers with activation ``phi`` maps ``x`` in
``R^d`` to ``f(x)`` through

.. math::

    h^1 = \\frac{\\sigma_w}{\\sqrt d} W^1 x + \\sigma_b b^1, \\qquad
    h^{l+1} = \\frac{\\sigma_w}{\\sqrt{n_l}} W^{l+1} \\phi(h^l) + \\sigma_b b^{l+1},

with standard normal weights and biases and ``f = h^{depth+1}``. When the
widths ``n_l`` grow, ``f`` is a Gaussian process whose kernel (the NNGP kernel)
follows the recursion

.. math::

    K^1(x, x') = \\sigma_w^2 \\frac{x^\\top x'}{d} + \\sigma_b^2, \\qquad
    K^{l+1}(x, x') = \\sigma_w^2\\, \\mathbb E[\\phi(u)\\phi(v)] + \\sigma_b^2,

where ``(u, v)`` is centred Gaussian with covariance
``[[K^l(x,x), K^l(x,x')], [K^l(x,x'), K^l(x',x')]]``. Trained by gradient
descent in the NTK parameterization, the network follows the neural tangent
kernel

.. math::

    \\Theta^1 = K^1, \\qquad
    \\Theta^{l+1} = K^{l+1} + \\sigma_w^2\\, \\mathbb E[\\phi'(u)\\phi'(v)]\\, \\Theta^l .

Both expectations are closed forms for the two activations supported here:

* ``"relu"`` (arc-cosine kernel of order 1), with
  ``rho = K12 / sqrt(K11 K22)`` and ``theta = arccos(rho)``:
  ``E[relu(u) relu(v)] = sqrt(K11 K22) (sin theta + (pi - theta) cos theta) / (2 pi)``
  and ``E[step(u) step(v)] = (pi - theta) / (2 pi)``;
* ``"erf"`` (arcsin kernel):
  ``E[erf(u) erf(v)] = (2/pi) arcsin(2 K12 / sqrt((1 + 2 K11)(1 + 2 K22)))``
  and ``E[erf'(u) erf'(v)] = (4/pi) / sqrt((1 + 2 K11)(1 + 2 K22) - 4 K12^2)``.

Matrices are computed in row blocks (:func:`kernel_matrix`) so that the
temporaries stay at ``block_size x n2``; a ``10^4 x 10^4`` float64 kernel
needs its 800 MB output and a few blocks of scratch. The hyperparameters are
traced values, so every function works under ``jit`` and ``grad``. Call these
functions inside ``jax.enable_x64(True)`` for float64 results.
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._moments import diag_roots, moments_fn

if TYPE_CHECKING:
    from jax.typing import ArrayLike

__all__ = [
    "ACTIVATIONS",
    "KernelParams",
    "kernel_diag",
    "kernel_matrix",
    "nngp_kernel",
    "ntk_kernel",
    "validate_inputs",
]

ACTIVATIONS = ("relu", "erf")
Activation = Literal["relu", "erf"]


class KernelParams(NamedTuple):
    """Architecture of the fully connected network.

    Attributes:
        weight_variance: ``sigma_w^2 > 0``, shared by every layer (readout included).
        bias_variance: ``sigma_b^2 >= 0``, shared by every layer.
        depth: Number of hidden layers (``0`` gives the linear kernel ``K^1``).
        activation: ``"relu"`` or ``"erf"``.
    """

    weight_variance: float = 2.0
    bias_variance: float = 0.0
    depth: int = 1
    activation: Activation = "relu"


def _is_concrete(value) -> bool:
    return not isinstance(value, jax.core.Tracer)


def _check_params(weight_variance, bias_variance, depth: int, activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if not isinstance(depth, int | np.integer) or depth < 0:
        raise ValueError(f"depth must be a non-negative integer, got {depth!r}")
    if _is_concrete(weight_variance):
        wv = np.asarray(weight_variance)
        if wv.shape != () or not np.isfinite(wv) or wv <= 0:
            raise ValueError(f"weight_variance must be a positive scalar, got {weight_variance!r}")
    if _is_concrete(bias_variance):
        bv = np.asarray(bias_variance)
        if bv.shape != () or not np.isfinite(bv) or bv < 0:
            raise ValueError(f"bias_variance must be a non-negative scalar, got {bias_variance!r}")


def validate_inputs(x1: ArrayLike, x2: ArrayLike | None = None) -> tuple[jax.Array, jax.Array]:
    """Check and convert inputs to arrays of shape ``(n, d)``.

    Args:
        x1: Inputs, shape ``(n1, d)``.
        x2: Inputs, shape ``(n2, d)``; ``None`` means ``x1``.

    Returns:
        ``(x1, x2)`` as JAX arrays of the default float dtype.

    Raises:
        ValueError: Wrong rank, mismatched feature dimension, empty or non-finite inputs.
    """
    arrays = []
    for name, x in (("x1", x1), ("x2", x1 if x2 is None else x2)):
        if _is_concrete(x):
            xa = np.asarray(x)
            if xa.ndim != 2:
                raise ValueError(f"{name} must have shape (n, d), got shape {xa.shape}")
            if xa.shape[0] == 0 or xa.shape[1] == 0:
                raise ValueError(f"{name} is empty (shape {xa.shape})")
            if not np.all(np.isfinite(xa)):
                raise ValueError(f"{name} contains NaN or infinite values")
        elif jnp.ndim(x) != 2:
            raise ValueError(f"{name} must have shape (n, d), got shape {jnp.shape(x)}")
        arrays.append(jnp.asarray(x, dtype=jnp.result_type(float)))
    if arrays[0].shape[1] != arrays[1].shape[1]:
        raise ValueError(
            f"x1 and x2 must have the same number of features, got {arrays[0].shape[1]} "
            f"and {arrays[1].shape[1]}"
        )
    return arrays[0], arrays[1]


def _layer_diags(x, weight_variance, bias_variance, depth: int, activation: str):
    """``K^l(x, x)`` for l = 1..depth+1, shape ``(depth + 1, n)``."""
    k = weight_variance * jnp.sum(x * x, axis=-1) / x.shape[-1] + bias_variance
    diags = [k]
    for _ in range(depth):
        if activation == "relu":
            e = k / 2
        else:
            e = (2 / jnp.pi) * jnp.arcsin(2 * k / (1 + 2 * k))
        k = weight_variance * e + bias_variance
        diags.append(k)
    return jnp.stack(diags)


def _cross(x1, x2, d1, d2, weight_variance, bias_variance, depth, activation, ntk):
    """Output NNGP (and NTK) of rows ``x1`` against ``x2`` given their layer diagonals."""
    k = weight_variance * (x1 @ x2.T) / x1.shape[-1] + bias_variance
    theta = k if ntk else None
    moments = moments_fn(activation)
    r1, r2 = diag_roots(d1, activation), diag_roots(d2, activation)
    for layer in range(depth):
        e, edot = moments(r1[layer][:, None], r2[layer][None, :], k, ntk)
        k = weight_variance * e + bias_variance
        if ntk:
            theta = k + weight_variance * edot * theta
    return k, theta


def _pad_blocks(x, d, block_size: int):
    """Rows of ``x`` (n, p) and columns of ``d`` (L, n) in ``nb`` blocks of ``block_size``.

    Returns ``(xb, db)`` of shapes (nb, block_size, p) and (nb, L, block_size). Padded rows
    repeat the first row so that every block stays finite.
    """
    n = x.shape[0]
    nb = math.ceil(n / block_size)
    pad = nb * block_size - n
    xp = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, x.shape[1]))])
    dp = jnp.concatenate([d, jnp.broadcast_to(d[:, :1], (d.shape[0], pad))], axis=1)
    return xp.reshape(nb, block_size, -1), dp.reshape(d.shape[0], nb, block_size).transpose(1, 0, 2)


@partial(jax.jit, static_argnames=("depth", "activation", "ntk", "block_size"))
def _blocked(x1, x2, weight_variance, bias_variance, depth, activation, ntk, block_size):
    args = (weight_variance, bias_variance, depth, activation)
    d1 = _layer_diags(x1, *args)
    d2 = _layer_diags(x2, *args)
    n1 = x1.shape[0]
    if n1 <= block_size:
        nngp, theta = _cross(x1, x2, d1, d2, *args, ntk)
        return theta if ntk else nngp
    xb, db = _pad_blocks(x1, d1, block_size)

    def one_block(blk):
        nngp, theta = _cross(blk[0], x2, blk[1], d2, *args, ntk)
        return theta if ntk else nngp

    out = lax.map(one_block, (xb, db))
    return out.reshape(-1, out.shape[-1])[:n1]


@partial(jax.jit, static_argnames=("depth", "activation", "ntk", "block_size"))
def _blocked_symmetric(x, weight_variance, bias_variance, depth, activation, ntk, block_size):
    """``k(x, x)`` from the tiles on and below the block diagonal, each mirrored.

    About half the work of :func:`_blocked` and symmetric off the diagonal tiles;
    one ``block_size x block_size`` tile of temporaries at a time.
    """
    args = (weight_variance, bias_variance, depth, activation)
    d = _layer_diags(x, *args)
    n = x.shape[0]
    if n <= block_size:
        nngp, theta = _cross(x, x, d, d, *args, ntk)
        return theta if ntk else nngp
    xb, db = _pad_blocks(x, d, block_size)
    nb = xb.shape[0]
    rows, cols = np.tril_indices(nb)

    def tile(ij):
        i, j = ij
        nngp, theta = _cross(xb[i], xb[j], db[i], db[j], *args, ntk)
        return theta if ntk else nngp

    tiles = lax.map(tile, (jnp.asarray(rows), jnp.asarray(cols)))  # (T, bs, bs)
    # block (I, J) is tile (max, min), transposed above the diagonal
    index = np.zeros((nb, nb), int)
    index[rows, cols] = index[cols, rows] = np.arange(len(rows))
    upper = jnp.asarray(np.triu(np.ones((nb, nb), bool), 1))[:, :, None, None]
    blocks = tiles[index]
    blocks = jnp.where(upper, blocks.swapaxes(-1, -2), blocks)
    full = blocks.transpose(0, 2, 1, 3).reshape(nb * block_size, nb * block_size)
    return full[:n, :n]


def kernel_matrix(
    x1: ArrayLike,
    x2: ArrayLike | None = None,
    *,
    weight_variance: float | jax.Array = 2.0,
    bias_variance: float | jax.Array = 0.0,
    depth: int = 1,
    activation: Activation = "relu",
    kind: Literal["nngp", "ntk"] = "nngp",
    block_size: int = 1024,
) -> jax.Array:
    """Kernel matrix of the infinitely wide network, computed in row blocks.

    Args:
        x1: Inputs, shape ``(n1, d)``.
        x2: Inputs, shape ``(n2, d)``; ``None`` means ``x1``, computed from the tiles on
            and below the block diagonal (half the work, exactly symmetric).
        weight_variance: ``sigma_w^2 > 0`` (may be a traced scalar).
        bias_variance: ``sigma_b^2 >= 0`` (may be a traced scalar).
        depth: Number of hidden layers.
        activation: ``"relu"`` (arc-cosine) or ``"erf"`` (arcsin).
        kind: ``"nngp"`` for the Gaussian-process kernel ``K^{depth+1}``, ``"ntk"`` for the
            neural tangent kernel ``Theta^{depth+1}``.
        block_size: Rows of ``x1`` handled at once; bounds temporaries to
            ``O(block_size * n2)``.

    Returns:
        Kernel matrix, shape ``(n1, n2)``.

    Raises:
        ValueError: Bad architecture (non-positive ``weight_variance``, negative
            ``bias_variance``, unknown activation, negative depth) or bad inputs.
    """
    _check_params(weight_variance, bias_variance, depth, activation)
    if kind not in ("nngp", "ntk"):
        raise ValueError(f"kind must be 'nngp' or 'ntk', got {kind!r}")
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    a, b = validate_inputs(x1, x2)
    rest = (
        jnp.asarray(weight_variance, a.dtype),
        jnp.asarray(bias_variance, a.dtype),
        int(depth),
        activation,
        kind == "ntk",
        block_size,
    )
    return _blocked_symmetric(a, *rest) if x2 is None else _blocked(a, b, *rest)


def nngp_kernel(x1: ArrayLike, x2: ArrayLike | None = None, **kwargs: Any) -> jax.Array:
    """NNGP kernel matrix ``K^{depth+1}(x1, x2)``, shape ``(n1, n2)``.

    Keyword arguments are those of :func:`kernel_matrix` (``kind`` excluded).
    """
    return kernel_matrix(x1, x2, kind="nngp", **kwargs)


def ntk_kernel(x1: ArrayLike, x2: ArrayLike | None = None, **kwargs: Any) -> jax.Array:
    """Neural tangent kernel matrix ``Theta^{depth+1}(x1, x2)``, shape ``(n1, n2)``.

    Keyword arguments are those of :func:`kernel_matrix` (``kind`` excluded).
    """
    return kernel_matrix(x1, x2, kind="ntk", **kwargs)


def kernel_diag(
    x: ArrayLike,
    *,
    weight_variance: float | jax.Array = 2.0,
    bias_variance: float | jax.Array = 0.0,
    depth: int = 1,
    activation: Activation = "relu",
    kind: Literal["nngp", "ntk"] = "nngp",
) -> jax.Array:
    """Diagonal ``k(x_i, x_i)`` of the kernel without forming the matrix.

    Args:
        x: Inputs, shape ``(n, d)``.
        weight_variance: ``sigma_w^2 > 0``.
        bias_variance: ``sigma_b^2 >= 0``.
        depth: Number of hidden layers.
        activation: ``"relu"`` or ``"erf"``.
        kind: ``"nngp"`` or ``"ntk"``.

    Returns:
        Prior variances, shape ``(n,)``.
    """
    _check_params(weight_variance, bias_variance, depth, activation)
    xa, _ = validate_inputs(x)
    diags = _layer_diags(xa, weight_variance, bias_variance, depth, activation)
    if kind == "nngp":
        return diags[-1]
    if kind != "ntk":
        raise ValueError(f"kind must be 'nngp' or 'ntk', got {kind!r}")
    theta = diags[0]
    moments = moments_fn(activation)
    roots = diag_roots(diags, activation)
    for layer in range(depth):
        _, edot = moments(roots[layer], roots[layer], diags[layer], True)
        theta = diags[layer + 1] + weight_variance * edot * theta
    return theta
