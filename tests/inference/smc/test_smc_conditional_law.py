"""Exact laws of the resampling schemes and of their conditional versions.

For a small problem (M = 4 weights, N = 5 draws) the law of the count vector
``c_i = #{n: A^n = i}`` of every scheme is computed exactly here, in NumPy and
independently of the implementation. The conditional version keeping index
``k`` must put ``k`` in slot 0 and have the size-biased law
``P(c) c_k / (N w_k)`` (the law of the scheme's count vector given that a
uniformly chosen slot holds ``k``). Chi-square tests of the simulated count
vectors use a fixed seed; each test rejects at p < 1e-3, so the 12 tests
below raise a false alarm with probability at most 1.2%.
"""

from __future__ import annotations

import itertools
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bayes.inference.smc import resampling
from scipy import stats

WEIGHTS = np.array([0.12, 0.33, 0.18, 0.37])
M, N = 4, 5
REPS = 20_000
KEPT = (0, 3)  # floor(N w) = 0 and 1: both branches of conditional residual
ALPHA = 1e-3


def _compositions(total: int, parts: int):
    for cut in itertools.combinations(range(total + parts - 1), parts - 1):
        edges = (-1, *cut, total + parts - 1)
        yield tuple(edges[i + 1] - edges[i] - 1 for i in range(parts))


def _index(u: float, cdf: np.ndarray) -> int:
    return min(int(np.searchsorted(cdf, u, side="right")), M - 1)


def _counts_pmf(per_slot: list[np.ndarray]) -> dict[tuple, float]:
    """Law of the counts of independent slots with categorical laws ``per_slot``."""
    law = {(0,) * M: 1.0}
    for p in per_slot:
        new: dict[tuple, float] = Counter()
        for c, q in law.items():
            for i in np.flatnonzero(p):
                c2 = list(c)
                c2[i] += 1
                new[tuple(c2)] += q * p[i]
        law = dict(new)
    return law


def exact_law(name: str) -> dict[tuple, float]:
    cdf = np.cumsum(WEIGHTS)
    lower = cdf - WEIGHTS
    if name == "multinomial":
        return {c: stats.multinomial.pmf(c, N, WEIGHTS) for c in _compositions(N, M)}
    if name == "stratified":
        strata = [
            N * np.clip(np.minimum(cdf, (n + 1) / N) - np.maximum(lower, n / N), 0, None)
            for n in range(N)
        ]
        return _counts_pmf(strata)
    if name == "systematic":
        # One uniform u in [0, 1/N): the counts are constant between breakpoints.
        points = {0.0, 1.0 / N}
        points |= {c - n / N for c in cdf for n in range(N) if 0 < c - n / N < 1.0 / N}
        points = sorted(points)
        law: dict[tuple, float] = Counter()
        for a, b in itertools.pairwise(points):
            mid = 0.5 * (a + b)
            counts = np.bincount([_index(mid + n / N, cdf) for n in range(N)], minlength=M)
            law[tuple(counts)] += N * (b - a)
        return dict(law)
    if name == "residual":
        det = np.floor(N * WEIGHTS).astype(int)
        rest = N - det.sum()
        res = (N * WEIGHTS - det) / rest
        return {
            tuple(det + np.array(c)): stats.multinomial.pmf(c, rest, res)
            for c in _compositions(rest, M)
        }
    raise ValueError(name)


def size_biased(law: dict[tuple, float], kept: int) -> dict[tuple, float]:
    return {c: p * c[kept] / (N * WEIGHTS[kept]) for c, p in law.items() if c[kept] > 0}


def chi2_pvalue(draws: np.ndarray, law: dict[tuple, float]) -> float:
    """Chi-square test of count vectors ``draws`` ``(R, M)`` against ``law``."""
    observed = Counter(map(tuple, draws))
    assert set(observed) <= set(law), set(observed) - set(law)  # no impossible vector
    assert abs(sum(law.values()) - 1) < 1e-9
    big = [c for c, p in law.items() if p * len(draws) >= 5]
    obs = [observed[c] for c in big]
    exp = [law[c] * len(draws) for c in big]
    small = [c for c in law if c not in big]
    if small:  # pool the rare vectors in one cell
        obs.append(sum(observed[c] for c in small))
        exp.append(sum(law[c] for c in small) * len(draws))
    return stats.chisquare(obs, exp).pvalue


@pytest.mark.parametrize("name", list(resampling.RESAMPLING_SCHEMES))
def test_scheme_and_conditional_scheme_follow_their_exact_laws(name: str) -> None:
    scheme, conditional = resampling.get_scheme(name)
    w = jnp.asarray(WEIGHTS, dtype=jnp.float32)

    @jax.jit
    def draw(keys, kept):
        plain = jax.vmap(lambda k: scheme(k, w, N))(keys)
        cond = jax.vmap(lambda k: conditional(k, w, N, kept))(keys)
        count = jax.vmap(lambda a: jnp.bincount(a, length=M))
        return count(plain), cond[:, 0], count(cond)

    law = exact_law(name)
    counts, _, _ = draw(jax.random.split(jax.random.key(2026), REPS), 0)
    assert chi2_pvalue(np.asarray(counts), law) > ALPHA, name
    for kept in KEPT:
        _, first, ccounts = draw(jax.random.split(jax.random.key(kept + 1), REPS), kept)
        assert np.all(np.asarray(first) == kept)
        ccounts = np.asarray(ccounts)
        assert chi2_pvalue(ccounts, size_biased(law, kept)) > ALPHA, (name, kept)
        # The test has power: the conditional draws are far from the plain law.
        assert chi2_pvalue(ccounts, law) < ALPHA, (name, kept)
