"""Baselines on the same networks and tasks: MAML (2nd/1st order), Reptile, ProtoNet.

- MAML (Finn et al., 2017): adapt ``theta`` by ``K`` gradient steps on the
  support loss, meta-loss is the query loss of the adapted weights,
  differentiated through the unrolled inner loop (second order) or with the
  inner gradients held constant (first order).
- Reptile (Nichol et al., 2018): ``K`` gradient steps on the task's data, then
  move ``theta`` towards the adapted weights: the optax "gradient" is
  ``theta - mean_i(phi_i)``.
- ProtoNet (Snell et al., 2017): the network embeds images; class prototypes
  are support means; logits are negative squared distances to them.

All return a :class:`~bayes.models.niw.common.MetaLearner`; point methods
predict a single draw (``S = 1``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .common import Likelihood, MetaLearner, inner_sgd
from .data import Episode, check_episode, check_task
from .nets import Network

__all__ = ["PointState", "maml", "protonet", "reptile"]


class PointState(NamedTuple):
    """Meta-training state of the point-estimate methods: weights and optax state."""

    theta: jax.Array
    opt_state: Any


def _apply_grads(optimizer, state, grads):
    updates, opt_state = optimizer.update(grads, state.opt_state, state.theta)
    return PointState(optax.apply_updates(state.theta, updates), opt_state)


def _gradient_method(network, optimizer, meta_loss):
    """``init`` and ``step`` of a method trained by gradient descent on ``meta_loss``."""

    def init(rng_key):
        theta = network.init(rng_key)
        return PointState(theta, optimizer.init(theta))

    def step(rng_key, state, episode):
        check_episode(episode)
        del rng_key
        loss, grads = jax.value_and_grad(meta_loss)(state.theta, episode)
        return _apply_grads(optimizer, state, grads), {"loss": loss}

    return init, step


def _check_steps(num_inner_steps: int, inner_step_size: float) -> None:
    if num_inner_steps < 0:
        raise ValueError(f"num_inner_steps must be >= 0, got {num_inner_steps}")
    if not inner_step_size > 0:
        raise ValueError(f"inner_step_size must be positive, got {inner_step_size}")


def maml(
    network: Network,
    likelihood: Likelihood,
    optimizer: optax.GradientTransformation,
    *,
    num_inner_steps: int = 1,
    inner_step_size: float = 0.01,
    num_test_steps: int | None = None,
    first_order: bool = False,
) -> MetaLearner:
    """Model-agnostic meta-learning.

    Args:
        network: Network over flat weights ``(D,)``.
        likelihood: Supplies the task loss (MSE or cross-entropy).
        optimizer: Outer optax optimizer.
        num_inner_steps: Inner gradient steps during meta-training.
        inner_step_size: Inner learning rate.
        num_test_steps: Inner steps at test time (default ``num_inner_steps``).
        first_order: First-order MAML (no second derivatives).

    Returns:
        The meta-learner, a :class:`~bayes.models.niw.common.MetaLearner` named ``"MAML"`` or
            ``"FOMAML"``.
    """
    _check_steps(num_inner_steps, inner_step_size)
    test_steps = num_inner_steps if num_test_steps is None else num_test_steps

    def adapt(theta, xs, ys, num_steps, first):
        support_loss = lambda th: likelihood.loss(network.apply(th, xs), ys)  # noqa: E731
        return inner_sgd(
            support_loss, theta, num_steps=num_steps, step_size=inner_step_size, first_order=first
        )

    def meta_loss(theta, episode: Episode):
        def one(xs, ys, xq, yq):
            phi = adapt(theta, xs, ys, num_inner_steps, first_order)
            return likelihood.loss(network.apply(phi, xq), yq)

        return jnp.mean(jax.vmap(one)(*episode))

    init, step = _gradient_method(network, optimizer, meta_loss)

    def predict(rng_key, state, x_support, y_support, x_query):
        check_task(x_support, y_support, x_query)
        del rng_key
        phi = adapt(state.theta, x_support, y_support, test_steps, True)
        return network.apply(phi, x_query)[None]

    return MetaLearner(init, step, predict, "FOMAML" if first_order else "MAML")


def reptile(
    network: Network,
    likelihood: Likelihood,
    optimizer: optax.GradientTransformation,
    *,
    num_inner_steps: int = 5,
    inner_step_size: float = 0.01,
    num_test_steps: int | None = None,
    max_grad_norm: float | None = 10.0,
) -> MetaLearner:
    """Reptile: inner SGD on all of a task's points, outer step towards the adapted weights.

    Args:
        network: Network over flat weights ``(D,)``.
        likelihood: Supplies the task loss.
        optimizer: Outer optax optimizer applied to ``theta - mean_i(phi_i)``
            (``optax.sgd(epsilon)`` is the original algorithm).
        num_inner_steps: Inner gradient steps.
        inner_step_size: Inner learning rate.
        num_test_steps: Inner steps at test time on the support set (default
            ``num_inner_steps``).
        max_grad_norm: Gradient-norm clip of every inner step (training and test);
            unclipped steps at a fixed rate can diverge on steep, large-amplitude
            tasks. ``None`` for the original unclipped algorithm.

    Returns:
        The meta-learner, a :class:`~bayes.models.niw.common.MetaLearner` named ``"Reptile"``.
    """
    _check_steps(num_inner_steps, inner_step_size)
    test_steps = num_inner_steps if num_test_steps is None else num_test_steps

    def adapt(theta, x, y, num_steps):
        loss = lambda th: likelihood.loss(network.apply(th, x), y)  # noqa: E731
        return inner_sgd(
            loss, theta, num_steps=num_steps, step_size=inner_step_size, unroll=False,
            max_grad_norm=max_grad_norm,
        )  # fmt: skip

    def init(rng_key):
        theta = network.init(rng_key)
        return PointState(theta, optimizer.init(theta))

    def step(rng_key, state, episode: Episode):
        check_episode(episode)
        del rng_key

        def one(xs, ys, xq, yq):
            x, y = jnp.concatenate([xs, xq]), jnp.concatenate([ys, yq])
            return adapt(state.theta, x, y, num_inner_steps)

        phis = jax.vmap(one)(*episode)
        direction = state.theta - jnp.mean(phis, axis=0)
        return _apply_grads(optimizer, state, direction), {"step_norm": jnp.linalg.norm(direction)}

    def predict(rng_key, state, x_support, y_support, x_query):
        check_task(x_support, y_support, x_query)
        del rng_key
        phi = adapt(state.theta, x_support, y_support, test_steps)
        return network.apply(phi, x_query)[None]

    return MetaLearner(init, step, predict, "Reptile")


def protonet(
    network: Network, optimizer: optax.GradientTransformation, *, num_ways: int
) -> MetaLearner:
    """Prototypical networks for ``num_ways``-way classification.

    Args:
        network: Embedding network ``(N, in_dim) -> (N, embed_dim)`` over flat weights.
        optimizer: optax optimizer of the embedding weights.
        num_ways: Classes per task (labels ``0..num_ways-1``).

    Returns:
        A meta-learner (:class:`~bayes.models.niw.common.MetaLearner`) named ``"ProtoNet"``
            whose outputs are logits ``-||e(x) - c_k||^2`` of shape ``(1, N_q, num_ways)``.
    """
    if num_ways < 2:
        raise ValueError(f"num_ways must be at least 2, got {num_ways}")

    def logits(theta, xs, ys, xq):
        emb_s, emb_q = network.apply(theta, xs), network.apply(theta, xq)
        onehot = jax.nn.one_hot(ys, num_ways)  # (N_s, C)
        protos = (onehot.T @ emb_s) / jnp.maximum(onehot.sum(0), 1.0)[:, None]
        return -jnp.sum((emb_q[:, None, :] - protos[None]) ** 2, axis=-1)

    def meta_loss(theta, episode: Episode):
        def one(xs, ys, xq, yq):
            logp = jax.nn.log_softmax(logits(theta, xs, ys, xq))
            return -jnp.mean(jnp.take_along_axis(logp, yq[:, None], axis=-1))

        return jnp.mean(jax.vmap(one)(*episode))

    init, step = _gradient_method(network, optimizer, meta_loss)

    def predict(rng_key, state, x_support, y_support, x_query):
        check_task(x_support, y_support, x_query)
        del rng_key
        return logits(state.theta, x_support, y_support, x_query)[None]

    return MetaLearner(init, step, predict, "ProtoNet")
