"""Backward draws: indices from the backward kernel of a particle filter.

Given particles :math:`x_{t-1}^{1:N}` with normalised weights :math:`W^{1:N}`
and new particles :math:`x_t^{1:M}`, the backward kernel is

.. math::

    \\Lambda(i, j) \\propto W^j\\, q_t(x_{t-1}^j, x_t^i).

Three samplers of ``K`` indices per new particle, all returning ``(M, K)`` int32:

- :func:`exact_draws`: the full ``(M, N)`` matrix, :math:`O(MN)`.
- :func:`rejection_draws`: propose :math:`j \\sim W` and accept with
  probability :math:`q_t(x_{t-1}^j, x_t^i) / \\bar q_t` (needs the bound
  :math:`\\bar q_t`), at most ``max_trials`` times; if any draw fails, the
  failed ones are redrawn exactly (Douc et al. 2011; Olsson & Westerborn 2017).
  Expected cost :math:`O(N)` when the bound is reasonable.
- :func:`mcmc_draws`: independent Metropolis-Hastings with proposal ``W``
  started from the particle's ancestor, which is itself an exact draw from
  :math:`\\Lambda` when the ancestors are drawn from ``W`` (Dau & Chopin
  2022); fixed :math:`O(N K \\cdot \\text{num\\_mcmc\\_steps})` cost.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from bayes.inference.smc._rng import uniforms
from bayes.inference.smc.resampling import multinomial
from jax import Array

__all__ = [
    "categorical_rows",
    "exact_draws",
    "mcmc_draws",
    "pairwise_logdensity",
    "rejection_draws",
]

PairLogdensity = Callable[[Array, Array], Array]


def pairwise_logdensity(log_q: PairLogdensity, x_prev: Array, x_new: Array) -> Array:
    """Matrix ``L[i, j] = log q(x_prev[j], x_new[i])`` of shape ``(M, N)``."""
    return jax.vmap(lambda xn: jax.vmap(lambda xp: log_q(xp, xn))(x_prev))(x_new)


#: Largest exponent used for unnormalised probabilities: N e^80 stays finite in
#: float32 for N < 6000 rows' worth of columns.
_MAX_EXPONENT = 80.0


def _row_max(logits: Array) -> Array:
    # The maximum through argmax: XLA's CPU back end hands a plain max-reduction,
    # fused with a vmapped log-density of vector states (trailing unit axes), to a
    # library kernel that is ~30x slower than this variadic reduction.
    top = jnp.argmax(logits, axis=-1, keepdims=True)
    return jnp.take_along_axis(logits, top, axis=-1)


def categorical_rows(
    rng_key: Array, logits: Array, num_draws: int, reference: Array | None = None
) -> Array:
    """``num_draws`` i.i.d. draws from each row of ``softmax(logits)``, shape ``(M, num_draws)``.

    Two-level inverse CDF: the ``N`` columns are cut into about
    :math:`\\sqrt N` blocks of :math:`\\sqrt N`; a draw picks a block by the
    cumulative block masses, then a column inside it. This costs :math:`O(MN)`
    for the probabilities and only :math:`O(M \\cdot \\text{draws} \\sqrt N)`
    for the cumulative sums, where one flat cumulative sum per row costs
    :math:`O(MN^2)` on XLA's CPU back end (no sequential scan kernel) and
    Gumbel-max draws :math:`MN \\cdot \\text{draws}` log-variates.

    Probabilities are :math:`e^{\\ell_{ij} - \\ell_{i r_i}}` with the logit of a
    reference column :math:`r_i` as shift, which saves a pass over the logits
    for their row maximum. Any reference is exact: a row whose exponents would
    exceed 80 (reference far below the row maximum) or are not finite is
    recomputed with the row maximum, in a branch taken only when such a row
    exists (under ``vmap`` both branches run). A column drawn from the row itself is ideal:
    its chance of being :math:`e^{-80}` times below the maximum is below
    :math:`N e^{-80}`.

    Args:
        rng_key: PRNG key.
        logits: Unnormalised log-probabilities, shape ``(M, N)``; each row
            needs one finite entry.
        num_draws: Draws per row.
        reference: Column per row, shape ``(M,)`` (int); ``None`` uses the row
            maximum.
    """
    return _draw_rows(rng_key, lambda: logits, num_draws, reference)


def _cumsum(x: Array) -> Array:
    # Cumulative sum over the last (short, about sqrt N) axis as a running sum of
    # slices. XLA:CPU lowers cumsum to a chain of reduce-windows, and a product with a
    # triangular matrix to a library matmul call whose fixed cost at these sizes was
    # about a tenth of an N=100 exact PaRIS step; the slice adds are plain loop kernels.
    parts = [x[..., 0]]
    for c in range(1, x.shape[-1]):
        parts.append(parts[-1] + x[..., c])
    return jnp.stack(parts, axis=-1)


#: Entries of the log-kernel per kernel when it is evaluated in row chunks, and the
#: largest matrix so split (see :func:`_row_chunks`).
_CHUNK_ENTRIES = 2048
_MAX_CHUNKED_ENTRIES = 8 * _CHUNK_ENTRIES


def _row_chunks(m: int, n: int) -> int:
    """Number of row chunks for the exponentiated ``(m, n)`` log-kernel.

    XLA:CPU splits an elementwise kernel across its threads once its cost model
    (arithmetic, transcendental and byte counts) passes a fixed threshold; an
    ``(100, 100)`` log-kernel with ``exp`` passes it. At that size handing half of
    a ~10 µs kernel to a second thread costs more than it saves (an exact PaRIS
    step at N=100 took 35% less wall and CPU time in 2048-entry row chunks,
    each below the threshold). Larger matrices stay one kernel: there the
    threads pay, and many chunks would multiply the fixed cost per kernel.
    """
    if m * n > _MAX_CHUNKED_ENTRIES:
        return 1
    return min(m, -(-(m * n) // _CHUNK_ENTRIES))


def _draw_rows(
    rng_key: Array,
    logits_fn: Callable[[], Array],
    num_draws: int,
    reference: Array | None,
    draws: Array | None = None,
) -> Array:
    # logits_fn recomputes the logits in the rare rerun instead of passing them to
    # it: materialising a fused pairwise log-density costs more than evaluating it.
    logits = logits_fn()
    m, n = logits.shape
    size = math.isqrt(n - 1) + 1  # ceil(sqrt(n))
    blocks = -(-n // size)

    def masses(logits: Array, shift: Array, chunks: int = 1) -> tuple[Array, Array]:
        bounds = [round(i * m / chunks) for i in range(chunks + 1)]
        parts = []
        for lo, hi in itertools.pairwise(bounds):
            probs = jnp.exp(jnp.minimum(logits[lo:hi] - shift[lo:hi], _MAX_EXPONENT))
            probs = jnp.pad(probs, ((0, 0), (0, blocks * size - n)))
            probs = probs.reshape(hi - lo, blocks, size)
            # Sums as products with ones: XLA:CPU hands these short float reductions to
            # a library kernel whose per-call cost was ~10% of an N=100 PaRIS step.
            parts.append((probs, probs @ jnp.ones(size, probs.dtype)))
        if chunks == 1:
            return parts[0]
        return jnp.concatenate([p for p, _ in parts]), jnp.concatenate([s for _, s in parts])

    chunks = _row_chunks(m, n)
    if reference is None:
        probs, mass = masses(logits, _row_max(logits), chunks)
    else:
        shift = jnp.take_along_axis(logits, reference[:, None].astype(jnp.int32), axis=-1)
        probs, mass = masses(logits, shift, chunks)
        # Some exponent was clipped (the row's total reaches e^80) or is not finite.
        unsafe = ~((mass @ jnp.ones(blocks, mass.dtype))[:, None] < math.exp(_MAX_EXPONENT))

        def rerun(_):
            logits = logits_fn()
            return masses(logits, jnp.where(unsafe, _row_max(logits), shift))

        probs, mass = jax.lax.cond(jnp.any(unsafe), rerun, lambda _: (probs, mass), None)
    cum_mass = _cumsum(mass)
    if draws is None:
        draws = uniforms(rng_key, (m, num_draws), probs.dtype)
    elif draws.shape != (m, num_draws):
        raise ValueError(f"draws must have shape {(m, num_draws)}, got {draws.shape}")
    u = draws.astype(probs.dtype) * cum_mass[:, -1:]
    # side="right" inverse CDF: the number of cumulative values <= u.
    block = jnp.sum(cum_mass[:, None, :] <= u[:, :, None], axis=-1)
    block = jnp.minimum(block, blocks - 1)
    below = jnp.take_along_axis(cum_mass - mass, block, axis=-1)
    inside = jnp.take_along_axis(probs, block[:, :, None], axis=1)
    col = jnp.sum(_cumsum(inside) <= (u - below)[:, :, None], axis=-1)
    col = jnp.minimum(col, size - 1)
    return jnp.minimum(block * size + col, n - 1).astype(jnp.int32)


def exact_draws(
    rng_key: Array,
    log_q: PairLogdensity,
    x_prev: Array,
    log_weights: Array,
    x_new: Array,
    num_backward: int,
    reference: Array | None = None,
    *,
    draws: Array | None = None,
) -> Array:
    """``K`` exact i.i.d. backward indices per new particle, shape ``(M, K)``.

    Args:
        reference: Optional index per new particle, shape ``(M,)``, whose
            backward probability is not negligible, e.g. its ancestor; it
            saves a pass over the ``(M, N)`` matrix (see
            :func:`categorical_rows`). The draws are exact either way.
        draws: Optional i.i.d. ``Uniform[0, 1)`` variates of shape ``(M, K)``
            to invert instead of drawing them from ``rng_key`` (a time loop
            can draw them ahead, see :func:`~bayes.inference.smc.paris.run_paris`).
    """

    def logits_fn() -> Array:
        return log_weights[None, :] + pairwise_logdensity(log_q, x_prev, x_new)

    return _draw_rows(rng_key, logits_fn, num_backward, reference, draws)


def rejection_draws(
    rng_key: Array,
    log_q: PairLogdensity,
    log_bound: Array,
    x_prev: Array,
    log_weights: Array,
    x_new: Array,
    num_backward: int,
    max_trials: int = 16,
) -> Array:
    """Accept-reject backward draws with an exact fallback, shape ``(M, K)``.

    Args:
        log_bound: Upper bound of ``log_q`` over both arguments (scalar).
        max_trials: Proposals per draw before falling back to an exact draw.
    """
    m = x_new.shape[0]
    k_prop, k_acc, k_exact = jax.random.split(rng_key, 3)
    shape = (max_trials, m, num_backward)
    # Inverse-CDF draws cost O(N + draws); categorical(shape=...) would draw N Gumbels each.
    proposals = multinomial(k_prop, jnp.exp(log_weights), math.prod(shape)).reshape(shape)
    log_acc = jax.vmap(
        lambda props: jax.vmap(lambda row, xn: jax.vmap(lambda j: log_q(x_prev[j], xn))(row))(
            props, x_new
        )
    )(proposals)
    accepted = jnp.log(jax.random.uniform(k_acc, shape)) < log_acc - log_bound
    first = jnp.argmax(accepted, axis=0)
    found = jnp.any(accepted, axis=0)
    chosen = jnp.take_along_axis(proposals, first[None], axis=0)[0]

    def with_fallback(_):
        exact = exact_draws(k_exact, log_q, x_prev, log_weights, x_new, num_backward)
        return jnp.where(found, chosen, exact)

    return jax.lax.cond(jnp.all(found), lambda _: chosen, with_fallback, None)


def mcmc_draws(
    rng_key: Array,
    log_q: PairLogdensity,
    x_prev: Array,
    log_weights: Array,
    x_new: Array,
    ancestors: Array,
    num_backward: int,
    num_mcmc_steps: int = 1,
) -> Array:
    """Independent-MH backward draws started at the ancestors, shape ``(M, K)``.

    Args:
        ancestors: Ancestor index of each new particle, shape ``(M,)``; each
            must be marginally ``W``-distributed (shuffle systematic ancestors).
        num_mcmc_steps: MH steps per draw.
    """
    m = x_new.shape[0]
    w = jnp.exp(log_weights)
    current = jnp.broadcast_to(ancestors[:, None], (m, num_backward))
    pair = jax.vmap(jax.vmap(lambda j, xn: log_q(x_prev[j], xn), in_axes=(0, None)))
    current_logq = pair(current, x_new)

    def body(carry, key):
        idx, lq = carry
        k_prop, k_acc = jax.random.split(key)
        prop = multinomial(k_prop, w, m * num_backward).reshape(m, num_backward)
        prop_lq = pair(prop, x_new)
        accept = jnp.log(jax.random.uniform(k_acc, (m, num_backward))) < prop_lq - lq
        return (jnp.where(accept, prop, idx), jnp.where(accept, prop_lq, lq)), None

    (idx, _), _ = jax.lax.scan(
        body, (current, current_logq), jax.random.split(rng_key, num_mcmc_steps)
    )
    return idx
