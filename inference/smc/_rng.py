"""PRNG helpers for the SMC time loops.

JAX lowers its default PRNG (threefry2x32) on CPU to a rolled loop of five
iterations per call. A PaRIS or filter step makes a few small draws
(resampling uniforms, one key per particle, backward-draw uniforms), and at
``N = 100`` those loops were a large part of a step. Philox-4x32 (Salmon et al.
2011, the Random123 family threefry belongs to, with the same 64-bit key
space; Philox-4x32-10 passes TestU01's BigCrush) lowers to straight-line
integer arithmetic that XLA fuses with its consumers.

:func:`loop_key` derives a Philox-4x32 key from the caller's key: a
deterministic function of ``rng_key``, so runs stay reproducible, and the laws
of all draws are unchanged; only the bit generator inside the loop differs.

Fusion has a cost of its own: XLA:CPU inlines a generator into every consumer
and recomputes it per consumed element, e.g. ``N`` times per uniform in an
``(N, N)`` inverse-CDF comparison. :func:`uniforms` therefore materialises its
draws behind a conditional, the one boundary XLA:CPU does not fuse across
(it drops ``optimization_barrier`` before fusion).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["LOOP_PRNG_IMPL", "loop_key", "uniforms"]

#: PRNG implementation of the keys handed to each time step.
LOOP_PRNG_IMPL = "philox4x32"


def loop_key(rng_key: Array) -> Array:
    """A Philox-4x32 key derived from ``rng_key`` (any JAX key, typed or raw ``uint32``).

    A key that already is Philox-4x32 is returned as it is.
    """
    typed = jnp.issubdtype(rng_key.dtype, jax.dtypes.prng_key)
    if typed and str(jax.random.key_impl(rng_key)) == LOOP_PRNG_IMPL:
        return rng_key
    data = jax.random.bits(rng_key, (2,), dtype=jnp.uint32)
    return jax.random.wrap_key_data(data, impl=LOOP_PRNG_IMPL)


def uniforms(rng_key: Array, shape: tuple[int, ...], dtype: jnp.dtype = float) -> Array:
    """``jax.random.uniform(rng_key, shape, dtype)``, computed once (not fused into consumers).

    The conditional's predicate is always true (uniforms lie in ``[0, 1)``), but
    XLA cannot prove it, so the draws are a materialised operand. Under ``vmap``
    the conditional becomes a select and the draws may be fused again: same
    values, only slower.
    """
    u = jax.random.uniform(rng_key, shape, dtype=dtype)
    if u.size == 0:
        return u
    return jax.lax.cond(u.reshape(-1)[0] < 1, lambda v: v, jnp.zeros_like, u)
