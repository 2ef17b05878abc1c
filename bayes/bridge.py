"""The one crossing between JAX and PyTorch, always in float64.

BoTorch acquisition functions need surrogates whose predictions are torch
tensors with gradients flowing to the inputs; the BNN and kernel surrogates
are written once, in JAX. :func:`torch_function` wraps a JAX function as a
``torch.autograd.Function`` whose backward pass is JAX's vector-Jacobian
product, so no second, hand-written torch copy of a network or kernel exists.

Both libraries are imported lazily; JAX code elsewhere never imports torch.

Example:
    >>> import jax.numpy as jnp
    >>> f = torch_function(lambda x, w: jnp.tanh(x @ w))
    >>> y = f(torch.randn(5, 3, dtype=torch.float64, requires_grad=True),
    ...       torch.randn(3, 2, dtype=torch.float64))  # y: (5, 2), differentiable
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["jax_to_torch", "torch_function", "torch_to_jax"]


def torch_to_jax(tensor: Any) -> Any:
    """Convert a torch tensor (or array-like) to a float64 JAX array.

    Args:
        tensor: A ``torch.Tensor`` of any shape, anything NumPy accepts, or a
            float64 JAX array (returned as is).

    Returns:
        A ``jax.Array`` of the same shape with dtype float64 (computed under
            ``jax.enable_x64``; callers keep using it inside that context).

    Raises:
        TypeError: If the input is complex or not numeric.
    """
    import jax
    import jax.numpy as jnp

    if isinstance(tensor, jax.Array) and tensor.dtype == jnp.float64:
        return tensor  # already float64 JAX: constants kept on the JAX side skip the copy
    if hasattr(tensor, "detach"):
        array = tensor.detach().cpu().numpy()
    else:
        array = np.asarray(tensor)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"bridge: expected a real numeric tensor, got dtype {array.dtype}")
    with jax.enable_x64(True):
        return jnp.asarray(array, dtype=jnp.float64)


def jax_to_torch(array: Any) -> Any:
    """Convert a JAX (or NumPy) array to a float64 CPU torch tensor (a copy).

    Args:
        array: Array of any shape.

    Returns:
        ``torch.Tensor`` with dtype ``torch.float64`` and the same shape.
    """
    import torch

    return torch.from_numpy(np.array(array, dtype=np.float64, copy=True))


def torch_function(fn: Callable[..., Any], *, jit: bool = True) -> Callable[..., Any]:
    """Wrap a JAX function of arrays as a differentiable torch function.

    The wrapped function takes torch tensors ``x_1, ..., x_k`` (any shapes;
    float64 JAX arrays are accepted too, as constants that need no copy),
    evaluates ``fn`` in float64 JAX, and returns one float64 torch tensor.
    Backward: given ``g = dL/dy``, returns ``(dL/dx_1, ..., dL/dx_k)`` from
    ``jax.vjp`` taken with respect to the inputs that require gradients only;
    the others get ``None`` and cost nothing. The forward pass and the VJP
    are each compiled once per input shape (and pattern of inputs requiring
    gradients) when ``jit`` is true.

    Args:
        fn: Pure JAX function ``(*arrays) -> array``; must be differentiable in
            every argument that will require gradients.
        jit: Compile forward and backward with ``jax.jit``.

    Returns:
        A function ``(*tensors) -> torch.Tensor`` usable inside BoTorch models.
    """
    import jax
    import torch

    def forward_and_vjp(needs_grad: tuple[bool, ...], *args: Any) -> tuple[Any, Any]:
        # Differentiate only the inputs that need it: the VJP of a large constant (say
        # the weights of an ensemble) would be computed and thrown away otherwise.
        diff = [a for a, g in zip(args, needs_grad, strict=True) if g]

        def partial_fn(*diff_args: Any) -> Any:
            it = iter(diff_args)
            return fn(*(next(it) if g else a for a, g in zip(args, needs_grad, strict=True)))

        return jax.vjp(partial_fn, *diff)

    def apply_vjp(vjp_fn: Any, cotangent: Any) -> Any:
        return vjp_fn(cotangent)

    fwd = jax.jit(forward_and_vjp, static_argnums=0) if jit else forward_and_vjp
    bwd = jax.jit(apply_vjp) if jit else apply_vjp

    class _JaxFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, *tensors: Any) -> Any:
            needs = tuple(bool(getattr(t, "requires_grad", False)) for t in tensors)
            with jax.enable_x64(True):
                args = [torch_to_jax(t) for t in tensors]
                out, vjp_fn = fwd(needs, *args)
            ctx.vjp_fn = vjp_fn
            return jax_to_torch(out)

        @staticmethod
        def backward(ctx: Any, grad_output: Any) -> Any:
            with jax.enable_x64(True):
                grads = iter(bwd(ctx.vjp_fn, torch_to_jax(grad_output)))
            return tuple(
                jax_to_torch(next(grads)) if needs else None for needs in ctx.needs_input_grad
            )

    def wrapped(*tensors: Any) -> Any:
        return _JaxFunction.apply(*tensors)

    wrapped.__doc__ = f"torch wrapper of JAX function {getattr(fn, '__name__', fn)!r}"
    return wrapped
