"""The PRNG helpers of the SMC time loops."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from bayes.inference.smc import _rng


def test_loop_key_is_a_deterministic_philox_key() -> None:
    key = jax.random.key(5)
    derived = _rng.loop_key(key)
    assert str(jax.random.key_impl(derived)) == _rng.LOOP_PRNG_IMPL
    np.testing.assert_array_equal(
        jax.random.key_data(derived), jax.random.key_data(_rng.loop_key(jax.random.key(5)))
    )
    # Other seeds give other keys; raw uint32 keys work; a Philox key passes through.
    assert not np.array_equal(
        jax.random.key_data(derived), jax.random.key_data(_rng.loop_key(jax.random.key(6)))
    )
    raw = _rng.loop_key(jax.random.PRNGKey(5))
    np.testing.assert_array_equal(jax.random.key_data(raw), jax.random.key_data(derived))
    assert _rng.loop_key(derived) is derived
    # Under jit and vmap alike.
    batched = jax.jit(jax.vmap(_rng.loop_key))(jax.random.split(key, 3))
    assert batched.shape == (3,)


def test_uniforms_are_the_plain_draws() -> None:
    key = _rng.loop_key(jax.random.key(0))
    expected = jax.random.uniform(key, (50, 3))
    got = jax.jit(lambda k: _rng.uniforms(k, (50, 3)))(key)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    assert _rng.uniforms(key, (0,)).shape == (0,)
    # The materialising conditional survives as a select under vmap: same values.
    keys = jax.random.split(key, 4)
    batched = jax.vmap(lambda k: _rng.uniforms(k, (7,), jnp.float32))(keys)
    np.testing.assert_array_equal(
        np.asarray(batched), np.asarray(jax.vmap(lambda k: jax.random.uniform(k, (7,)))(keys))
    )
