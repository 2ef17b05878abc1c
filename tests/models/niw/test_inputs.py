"""Bad inputs give clear errors naming the problem."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest
from bayes.models import niw as N


@pytest.fixture(scope="module")
def setup():
    net = N.mlp((1, 8, 1))
    lik = N.gaussian_likelihood(0.1)
    learner = N.niw_meta_learner(net, lik, optax.adam(1e-2), num_inner_steps=2)
    return net, lik, learner, learner.init(jax.random.key(0))


def test_empty_support_set(setup) -> None:
    _, _, learner, state = setup
    with pytest.raises(ValueError, match="empty support set"):
        learner.predict(jax.random.key(1), state, jnp.zeros((0, 1)), jnp.zeros((0, 1)),
                        jnp.zeros((3, 1)))  # fmt: skip
    ep = N.Episode(jnp.zeros((2, 0, 1)), jnp.zeros((2, 0, 1)), jnp.zeros((2, 3, 1)),
                   jnp.zeros((2, 3, 1)))  # fmt: skip
    with pytest.raises(ValueError, match="empty support set"):
        learner.step(jax.random.key(1), state, ep)


def test_mismatched_shapes(setup) -> None:
    _, lik, learner, state = setup
    with pytest.raises(ValueError, match="mismatched shapes"):
        learner.predict(jax.random.key(1), state, jnp.zeros((5, 1)), jnp.zeros((4, 1)),
                        jnp.zeros((3, 1)))  # fmt: skip
    with pytest.raises(ValueError, match="mismatched input dims"):
        learner.predict(jax.random.key(1), state, jnp.zeros((5, 1)), jnp.zeros((5, 1)),
                        jnp.zeros((3, 2)))  # fmt: skip
    ep = N.Episode(jnp.zeros((2, 5, 1)), jnp.zeros((3, 5, 1)), jnp.zeros((2, 3, 1)),
                   jnp.zeros((2, 3, 1)))  # fmt: skip
    with pytest.raises(ValueError, match="mismatched shapes"):
        learner.step(jax.random.key(1), state, ep)
    maml = N.maml(N.mlp((1, 8, 1)), lik, optax.adam(1e-3))
    with pytest.raises(ValueError, match="mismatched shapes"):
        maml.step(jax.random.key(1), maml.init(jax.random.key(0)), ep)
    d2 = N.NIW(jnp.zeros(2), jnp.array(1.0), jnp.ones(2), jnp.array(3.0))
    d3 = N.NIW(jnp.zeros(3), jnp.array(1.0), jnp.ones(3), jnp.array(3.0))
    with pytest.raises(ValueError, match="NIW shapes differ"):
        N.niw_kl(d2, d3)


def test_bad_settings() -> None:
    lik = N.gaussian_likelihood(0.1)
    net = N.mlp((1, 4, 1))
    with pytest.raises(ValueError, match="mlp sizes"):
        N.mlp((3,))
    with pytest.raises(ValueError, match="unknown activation"):
        N.mlp((1, 2), activation="swish")
    with pytest.raises(ValueError, match="noise_scale must be positive"):
        N.gaussian_likelihood(0.0)
    with pytest.raises(ValueError, match="num_average"):
        N.niw_meta_learner(net, lik, optax.adam(1e-3), num_inner_steps=2, num_average=3)
    with pytest.raises(ValueError, match="num_ways"):
        N.protonet(net, optax.adam(1e-3), num_ways=1)
    with pytest.raises(ValueError, match="cannot draw"):
        N.sample_classification(jnp.zeros((3, 10, 4)), rng_key=jax.random.key(0), num_tasks=2,
                                num_ways=5, num_shots=1, num_query=1)  # fmt: skip
    with pytest.raises(ValueError, match="split"):
        N.digits_classes("validation")
