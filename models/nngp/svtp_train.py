"""Fitting the sparse variational t process: the bound as a VI objective, and Adam on it.

The model, the bound and the predictions are in :mod:`bayes.models.nngp.svtp`; this
module turns an :class:`~bayes.models.nngp.svtp.SVTP` into an objective program for
:func:`bayes.inference.vi.build` and runs the optimisation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from bayes._blas import serial_blas

from ._svtp_bound import _marginal_bound
from .svtp import SVTP, SVTPFit

if TYPE_CHECKING:
    from jax.typing import ArrayLike

__all__ = ["svtp_fit", "svtp_objective"]

_OBJECTIVES = ("marginal", "joint")


def svtp_objective(
    model: SVTP, *, kind: str = "marginal", batch_size: int | None = None
) -> Callable[..., jax.Array]:
    """The bound as an objective program for :func:`bayes.inference.vi.build`.

    Args:
        model: From :func:`svtp`.
        kind: ``"marginal"`` (exact KL terms, per-point draws of ``(s_i, f_i)``) or
            ``"joint"`` (the VI layer's ``elbo`` of the model and guide).
        batch_size: Rows drawn without replacement at each call (``None``: all rows);
            the likelihood is scaled by ``n / batch_size``.

    Returns:
        ``objective(model, guide, params, x, y, *, rng_key)``: one unbiased draw of the
            bound on all ``n`` rows of ``x`` ``(n, d)`` and ``y``, shape ``()``.
    """
    from bayes.inference.vi import elbo

    if kind not in _OBJECTIVES:
        raise ValueError(f"kind must be one of {_OBJECTIVES}, got {kind!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    settings = model.settings

    def objective(model_fn, guide_fn, params, x, y, *, rng_key):
        x, y = jnp.asarray(x), jnp.asarray(y)
        n = x.shape[0]
        num_data = None
        if batch_size is not None and batch_size < n:
            rng_key, key = jax.random.split(rng_key)
            idx = jax.random.choice(key, n, (batch_size,), replace=False)
            x, y, num_data = x[idx], y[idx], n
        if kind == "joint":
            return elbo(model_fn, guide_fn, params, x, y, num_data=num_data, rng_key=rng_key)
        return _marginal_bound(settings, params, x, y, num_data, rng_key)

    return objective


def _check_data(x, y, likelihood, num_classes):
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got {x.shape}")
    if likelihood == "softmax":
        y = np.asarray(y)
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"labels must be integers of shape ({x.shape[0]},)")
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"labels must lie in 0..{num_classes - 1}")
        return x, jnp.asarray(y)
    y = jnp.asarray(y, x.dtype)
    if y.shape != (x.shape[0], num_classes) or not bool(jnp.all(jnp.isfinite(y))):
        raise ValueError(f"targets must be finite with shape ({x.shape[0]}, {num_classes})")
    return x, y


def svtp_fit(
    model: SVTP,
    x: ArrayLike,
    y: ArrayLike,
    *,
    rng_key: jax.Array,
    num_steps: int = 1000,
    learning_rate: float = 0.01,
    batch_size: int | None = None,
    objective: str = "marginal",
) -> SVTPFit:
    """Maximise the bound with Adam through :func:`bayes.inference.vi.build` (one ``scan``).

    Args:
        model: From :func:`svtp`.
        x: Training inputs, shape ``(n, d)``.
        y: Labels ``(n,)`` or targets ``(n, C)`` (see :func:`svtp`).
        rng_key: PRNG key.
        num_steps: Optimisation steps.
        learning_rate: Adam step size.
        batch_size: Minibatch size (``None``: full batch).
        objective: ``"marginal"`` or ``"joint"`` (see :func:`svtp_objective`).

    Returns:
        The fit, as an :class:`SVTPFit`.
    """
    import optax
    from bayes.inference.vi import build, run_steps

    x, y = _check_data(x, y, model.settings["likelihood"], model.settings["num_classes"])
    program = svtp_objective(model, kind=objective, batch_size=batch_size)
    init_key, state_key, run_key = jax.random.split(rng_key, 3)
    opt = optax.adam(learning_rate)
    with serial_blas():  # M x M factorizations: BLAS threads only spin
        algo = build(program, model.model, model.guide, opt, x, y, rng_key=init_key)
        state = algo.init(rng_key=state_key)
        run = jax.jit(run_steps, static_argnums=(0, 3))
        state, info = jax.block_until_ready(run(algo.step, state, run_key, num_steps))
    params = {k: v for k, v in algo.constrain(state.params).items() if k.startswith("svtp_")}
    if not bool(jnp.all(jnp.isfinite(info.objective[-1]))):
        raise FloatingPointError("the bound is not finite at the end of the fit; lower the step")
    return SVTPFit(model, params, info.objective)
