"""Resampling schemes and their conditional versions (pure JAX).

Every scheme maps normalised ``weights`` (shape ``(M,)``) to ``num_samples``
ancestor indices (shape ``(num_samples,)``, int32) with
:math:`\\mathbb E[\\#\\{n: A^n = i\\}] = N w_i` (unbiased resampling).

The conditional versions keep one index: they return ancestors with
``ancestors[0] == kept_index`` and the other entries drawn from the scheme's law
*size-biased by the number of copies of* ``kept_index``. That is the law
conditional SMC needs (Andrieu, Doucet & Holenstein 2010; Chopin & Singh 2015),
and it is obtained without rejection:

- multinomial: slot 0 is fixed, the others are i.i.d.;
- stratified / systematic: a stratum ``k`` is chosen with probability
  proportional to the overlap of ``[k/N, (k+1)/N)`` with the kept index's
  cumulative-weight interval, its uniform is drawn inside that overlap, and the
  slot is swapped to position 0;
- residual: the kept copy is a deterministic one with probability
  ``floor(N w_i) / (N w_i)``, otherwise one residual draw is fixed.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from bayes.inference.smc._rng import uniforms
from jax import Array

__all__ = [
    "RESAMPLING_SCHEMES",
    "conditional_multinomial",
    "conditional_residual",
    "conditional_stratified",
    "conditional_systematic",
    "ess",
    "from_uniforms",
    "get_scheme",
    "log_normalise",
    "multinomial",
    "residual",
    "stratified",
    "systematic",
]


def log_normalise(log_weights: Array) -> tuple[Array, Array]:
    """Normalised weights and the log of their mean.

    Args:
        log_weights: Unnormalised log-weights, shape ``(N,)``.

    Returns:
        ``(weights, log_mean)``: weights of shape ``(N,)`` summing to one and
            :math:`\\log \\frac1N \\sum_i e^{\\ell_i}` (the likelihood increment).
    """
    lse = jax.nn.logsumexp(log_weights)
    return jnp.exp(log_weights - lse), lse - jnp.log(log_weights.shape[0])


def ess(log_weights: Array) -> Array:
    """Effective sample size :math:`1/\\sum_i w_i^2` of unnormalised log-weights ``(N,)``."""
    w, _ = log_normalise(log_weights)
    return 1.0 / jnp.sum(w**2)


def _inverse_cdf(u: Array, weights: Array) -> Array:
    n = weights.shape[0]
    if u.size * n > 2**14:
        cdf = jnp.cumsum(weights)
        idx = jnp.searchsorted(cdf, u * cdf[-1], side="right", method="scan")
    else:
        # Small sizes count the cumulative weights below each uniform in one pass (a
        # binary search is an XLA loop whose per-iteration overhead dominates below
        # ~10^4 comparisons on CPU). The cumulative sum is a product with a triangular
        # matrix: XLA:CPU fuses the last stage of its cumsum into the (M, N)
        # comparison and redoes it per element, with integer index arithmetic.
        cdf = weights @ jnp.triu(jnp.ones((n, n), weights.dtype))
        idx = jnp.sum(cdf[None, :] <= (u * cdf[-1])[:, None], axis=1)
    return jnp.clip(idx, 0, n - 1).astype(jnp.int32)


def multinomial(rng_key: Array, weights: Array, num_samples: int) -> Array:
    """I.i.d. draws from ``Categorical(weights)``; ``weights`` ``(M,)`` -> ``(num_samples,)``."""
    return _inverse_cdf(uniforms(rng_key, (num_samples,)), weights)


def stratified(rng_key: Array, weights: Array, num_samples: int) -> Array:
    """One uniform per stratum ``[n/N, (n+1)/N)``; sorted indices ``(num_samples,)``."""
    return _stratified(uniforms(rng_key, (num_samples,)), weights)


def _stratified(u: Array, weights: Array) -> Array:
    num_samples = u.shape[0]
    return _inverse_cdf((jnp.arange(num_samples) + u) / num_samples, weights)


def systematic(rng_key: Array, weights: Array, num_samples: int) -> Array:
    """A single uniform shifted over the strata; sorted indices ``(num_samples,)``."""
    u = (jnp.arange(num_samples) + jax.random.uniform(rng_key, ())) / num_samples
    return _inverse_cdf(u, weights)


def _residual_parts(weights: Array, num_samples: int) -> tuple[Array, Array, Array]:
    scaled = num_samples * weights
    counts = jnp.floor(scaled)
    rest = scaled - counts
    deterministic = jnp.repeat(
        jnp.arange(weights.shape[0]), counts.astype(jnp.int32), total_repeat_length=num_samples
    )
    return counts, rest, deterministic


def residual(rng_key: Array, weights: Array, num_samples: int) -> Array:
    """``floor(N w_i)`` copies of each ``i``, the remainder multinomial on the residuals."""
    return _residual(uniforms(rng_key, (num_samples,)), weights)


def _residual(u: Array, weights: Array) -> Array:
    num_samples = u.shape[0]
    counts, rest, deterministic = _residual_parts(weights, num_samples)
    num_det = jnp.sum(counts).astype(jnp.int32)
    extra = _inverse_cdf(u, jnp.maximum(rest, 0.0))
    pos = jnp.arange(num_samples)
    return jnp.where(pos < num_det, deterministic, extra[jnp.maximum(pos - num_det, 0)]).astype(
        jnp.int32
    )


def _swap_to_front(ancestors: Array, slot: Array) -> Array:
    first = ancestors[0]
    return ancestors.at[0].set(ancestors[slot]).at[slot].set(first)


def conditional_multinomial(
    rng_key: Array, weights: Array, num_samples: int, kept_index: Array | int = 0
) -> Array:
    """Multinomial ancestors with ``ancestors[0] = kept_index``."""
    ancestors = multinomial(rng_key, weights, num_samples)
    return ancestors.at[0].set(kept_index)


def _overlaps(weights: Array, num_samples: int, kept_index: Array | int) -> tuple[Array, Array]:
    cdf = jnp.cumsum(weights) / jnp.sum(weights)
    upper = cdf[kept_index]
    lower = upper - weights[kept_index] / jnp.sum(weights)
    starts = jnp.arange(num_samples) / num_samples
    lo = jnp.maximum(starts, lower)
    hi = jnp.minimum(starts + 1.0 / num_samples, upper)
    return lo, jnp.maximum(hi - lo, 0.0)


def conditional_stratified(
    rng_key: Array, weights: Array, num_samples: int, kept_index: Array | int = 0
) -> Array:
    """Stratified ancestors with ``ancestors[0] = kept_index`` (size-biased law)."""
    k_slot, k_u, k_rest = jax.random.split(rng_key, 3)
    lo, length = _overlaps(weights, num_samples, kept_index)
    slot = jax.random.categorical(k_slot, jnp.log(length))
    u = (jnp.arange(num_samples) + jax.random.uniform(k_rest, (num_samples,))) / num_samples
    u = u.at[slot].set(lo[slot] + length[slot] * jax.random.uniform(k_u, ()))
    ancestors = _inverse_cdf(u, weights).at[slot].set(kept_index)
    return _swap_to_front(ancestors, slot)


def conditional_systematic(
    rng_key: Array, weights: Array, num_samples: int, kept_index: Array | int = 0
) -> Array:
    """Systematic ancestors with ``ancestors[0] = kept_index`` (size-biased law)."""
    k_slot, k_u = jax.random.split(rng_key)
    lo, length = _overlaps(weights, num_samples, kept_index)
    slot = jax.random.categorical(k_slot, jnp.log(length))
    shift = (lo[slot] + length[slot] * jax.random.uniform(k_u, ())) * num_samples - slot
    u = (jnp.arange(num_samples) + shift) / num_samples
    ancestors = _inverse_cdf(u, weights).at[slot].set(kept_index)
    return _swap_to_front(ancestors, slot)


def conditional_residual(
    rng_key: Array, weights: Array, num_samples: int, kept_index: Array | int = 0
) -> Array:
    """Residual ancestors with ``ancestors[0] = kept_index`` (size-biased law)."""
    k_choice, k_rest = jax.random.split(rng_key)
    counts, rest, deterministic = _residual_parts(weights, num_samples)
    num_det = jnp.sum(counts).astype(jnp.int32)
    extra = multinomial(k_rest, jnp.maximum(rest, 0.0), num_samples)
    p_det = counts[kept_index] / (num_samples * weights[kept_index] / jnp.sum(weights))
    use_det = jax.random.uniform(k_choice, ()) < p_det
    # Fixing the first residual draw gives the residual multinomial size-biased by its count.
    extra = jnp.where(use_det, extra, extra.at[0].set(kept_index))
    pos = jnp.arange(num_samples)
    ancestors = jnp.where(pos < num_det, deterministic, extra[jnp.maximum(pos - num_det, 0)])
    ancestors = ancestors.astype(jnp.int32)
    first_det = jnp.argmax(deterministic == kept_index)
    slot = jnp.where(use_det, first_det, num_det)
    return _swap_to_front(ancestors, slot)


ResamplingFn = Callable[[Array, Array, int], Array]

#: Name -> (scheme, conditional scheme).
RESAMPLING_SCHEMES: dict[str, tuple[ResamplingFn, Callable[..., Array]]] = {
    "multinomial": (multinomial, conditional_multinomial),
    "stratified": (stratified, conditional_stratified),
    "systematic": (systematic, conditional_systematic),
    "residual": (residual, conditional_residual),
}


def from_uniforms(name: str, u: Array, weights: Array) -> Array:
    """The scheme ``name`` driven by given uniforms instead of a key.

    With ``u`` i.i.d. ``Uniform[0, 1)`` of shape ``(num_samples,)`` the ancestors
    ``(num_samples,)`` follow the scheme's law (``systematic`` uses ``u[0]`` only).
    A time loop can so draw a step's uniforms ahead of it.
    """
    get_scheme(name)
    if name == "multinomial":
        return _inverse_cdf(u, weights)
    if name == "stratified":
        return _stratified(u, weights)
    if name == "systematic":
        return _inverse_cdf((jnp.arange(u.shape[0]) + u[0]) / u.shape[0], weights)
    return _residual(u, weights)


def get_scheme(name: str) -> tuple[ResamplingFn, Callable[..., Array]]:
    """``(scheme, conditional_scheme)`` by name; raises ``ValueError`` for unknown names."""
    try:
        return RESAMPLING_SCHEMES[name]
    except KeyError:
        known = ", ".join(RESAMPLING_SCHEMES)
        raise ValueError(f"unknown resampling scheme {name!r} (known: {known})") from None
