"""Pieces shared by NIW and the baselines: likelihoods, the inner loop, the learner contract.

Every method is a :class:`MetaLearner`: ``init(rng_key) -> state``, a pure
``step(rng_key, state, episode) -> (state, info)`` that does one
meta-iteration on a batch of tasks, and ``predict(rng_key, state, x_support,
y_support, x_query) -> outputs`` for one test task, returning network outputs
of shape ``(S, N_q, out_dim)`` (``S`` posterior draws; ``S = 1`` for point
estimates). All three are jit-safe; the experiments and the benchmark drive
every method through this one interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "Likelihood",
    "MetaLearner",
    "categorical_likelihood",
    "gaussian_likelihood",
    "inner_sgd",
]


class Likelihood(NamedTuple):
    """Observation model of a task.

    Attributes:
        nll: ``nll(output, y, lik_params) -> scalar``, the negative log-likelihood
            of one point; ``output`` of shape ``(out_dim,)``, ``y`` of shape
            ``(out_dim,)`` (regression) or ``()`` (class label).
        loss: ``loss(outputs, y) -> scalar``, the per-point mean task loss of the
            inner loop (MSE or cross-entropy; free of ``lik_params`` so step sizes
            mean the same thing for every method).
        init_params: Initial ``lik_params`` (a dict of arrays, possibly empty).
        learn_params: Whether meta-training optimizes ``lik_params``.
    """

    nll: Callable[[jax.Array, jax.Array, Any], jax.Array]
    loss: Callable[[jax.Array, jax.Array], jax.Array]
    init_params: dict[str, jax.Array]
    learn_params: bool


def gaussian_likelihood(noise_scale: float = 0.1, *, learn_noise: bool = True) -> Likelihood:
    """``y ~ Normal(f(x), noise_scale^2 I)``; the inner loss is the mean squared error.

    Args:
        noise_scale: Initial (or fixed) observation noise standard deviation.
        learn_noise: Meta-learn ``log_noise`` by maximizing the ELBO.
    """
    if not noise_scale > 0:
        raise ValueError(f"noise_scale must be positive, got {noise_scale}")

    def nll(output, y, lik_params):
        log_s = lik_params["log_noise"]
        r = (y - output) * jnp.exp(-log_s)
        return jnp.sum(0.5 * r**2 + log_s + 0.5 * jnp.log(2 * jnp.pi))

    def loss(outputs, y):
        return jnp.mean(jnp.sum((outputs - y) ** 2, axis=-1))

    params = {"log_noise": jnp.log(jnp.asarray(noise_scale, dtype=jnp.float32))}
    return Likelihood(nll=nll, loss=loss, init_params=params, learn_params=learn_noise)


def categorical_likelihood() -> Likelihood:
    """``y ~ Categorical(softmax(f(x)))``; the inner loss is the mean cross-entropy."""

    def nll(output, y, lik_params):
        return -jax.nn.log_softmax(output)[y]

    def loss(outputs, y):
        logp = jax.nn.log_softmax(outputs)
        return -jnp.mean(jnp.take_along_axis(logp, y[..., None], axis=-1))

    return Likelihood(nll=nll, loss=loss, init_params={}, learn_params=False)


class MetaLearner(NamedTuple):
    """A meta-learning method (see the module docstring for the contract).

    Attributes:
        init: ``init(rng_key) -> state``.
        step: ``step(rng_key, state, episode) -> (state, info)``.
        predict: ``predict(rng_key, state, x_support, y_support, x_query)`` returning
            outputs of shape ``(S, N_q, out_dim)``.
        name: Label used in tables and plots.
    """

    init: Callable[..., Any]
    step: Callable[..., tuple[Any, Any]]
    predict: Callable[..., jax.Array]
    name: str


def inner_sgd(
    loss_fn: Callable[[jax.Array], jax.Array],
    theta0: jax.Array,
    *,
    num_steps: int,
    step_size: float,
    first_order: bool = False,
    unroll: bool = True,
    max_grad_norm: float | None = None,
) -> jax.Array:
    """``num_steps`` of gradient descent ``theta <- theta - step_size * grad loss_fn(theta)``.

    Args:
        loss_fn: Scalar loss of a flat weight vector ``(D,)``.
        theta0: Starting point ``(D,)``.
        num_steps: Number of steps (0 returns ``theta0``).
        step_size: Learning rate of the inner loop.
        first_order: Stop gradients through the inner gradients (first-order MAML).
        unroll: Python-unrolled loop (differentiable, memory grows with
            ``num_steps``) rather than ``lax.fori_loop``.
        max_grad_norm: If given, each step's gradient is rescaled to at most this
            Euclidean norm, so that a steep task cannot make the loop diverge.

    Returns:
        The final iterate ``(D,)``.
    """

    def update(theta):
        g = jax.grad(loss_fn)(theta)
        if first_order:
            g = jax.lax.stop_gradient(g)
        if max_grad_norm is not None:
            g = g * jnp.minimum(1.0, max_grad_norm / (jnp.linalg.norm(g) + 1e-12))
        return theta - step_size * g

    if unroll:
        theta = theta0
        for _ in range(num_steps):
            theta = update(theta)
        return theta
    return jax.lax.fori_loop(0, num_steps, lambda _, t: update(t), theta0)
