"""PaRIS and PPG against Kalman smoothing; backward draws against the exact kernel."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bayes.inference.smc import backward, csmc, paris
from bayes.models import ssm
from scipy import stats

THETA = ssm.scalar_theta(0.8, 0.0, -0.3)
T = 10


def _setup():
    mats = ssm.scalar_matrices(THETA)
    _, ys = ssm.simulate(jax.random.key(7), mats, T)
    sm = ssm.rts_smoother(mats, ys)
    # H = sum_t x_{t-1} x_t: its smoothed expectation from the lag-one moments.
    truth = float(jnp.sum(sm.cross_covs[:, 0, 0] + sm.means[:-1, 0] * sm.means[1:, 0]))
    return mats, ys, sm, truth


def _h(xp, x, t):
    return xp[0] * x[0]


def _backward_setting():
    x_prev = jnp.linspace(-2.0, 2.0, 6)[:, None]
    log_w = jnp.log(jnp.array([0.1, 0.25, 0.05, 0.3, 0.2, 0.1]))
    model = ssm.linear_gaussian_ssm(ssm.scalar_matrices)

    def log_q(xp, xn):
        return model.transition_logdensity(xp, xn, 1, THETA)

    x_new = jnp.array([[-1.0], [0.5], [2.5]])
    probs = jax.nn.softmax(log_w[None] + backward.pairwise_logdensity(log_q, x_prev, x_new), -1)
    return model, log_q, x_prev, log_w, x_new, np.asarray(probs, dtype=float)


def _chi2_pvalues(draws: np.ndarray, probs: np.ndarray) -> list[float]:
    out = []
    for row, p in zip(draws, probs):
        counts = np.bincount(row, minlength=p.size)
        keep = p * row.size > 5
        expected = p[keep] * row.size
        observed = counts[keep]
        if (~keep).any():
            observed = np.append(observed, counts[~keep].sum())
            expected = np.append(expected, p[~keep].sum() * row.size)
        out.append(stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue)
    return out


def test_backward_draws_follow_the_exact_kernel() -> None:
    model, log_q, x_prev, log_w, x_new, probs = _backward_setting()
    K = 2000
    exact = backward.exact_draws(jax.random.key(1), log_q, x_prev, log_w, x_new, K)
    bound = model.transition_logdensity_bound(1, THETA)
    rej = backward.rejection_draws(jax.random.key(2), log_q, bound, x_prev, log_w, x_new, K, 4)
    # Exact draws inverting uniforms drawn ahead (as run_paris does) instead of a key.
    u = jnp.asarray(np.random.default_rng(5).random((x_new.shape[0], K)), jnp.float32)
    given = backward.exact_draws(None, log_q, x_prev, log_w, x_new, K, draws=u)
    for draws in (exact, rej, given):
        pvals = _chi2_pvalues(np.asarray(draws), probs)
        assert min(pvals) > 1e-3, pvals
    with pytest.raises(ValueError, match="draws must have shape"):
        backward.exact_draws(None, log_q, x_prev, log_w, x_new, K, draws=u[:, :3])
    # MCMC draws leave the kernel invariant: start from exact draws, move, re-test.
    reps = 1500
    starts = backward.exact_draws(jax.random.key(3), log_q, x_prev, log_w, x_new, reps)
    moved = jax.vmap(
        lambda k, a: backward.mcmc_draws(k, log_q, x_prev, log_w, x_new, a, 1, 2)[:, 0],
        in_axes=(0, 1),
    )(jax.random.split(jax.random.key(4), reps), starts)
    moved = np.asarray(moved).T
    assert np.mean(moved != np.asarray(starts)) > 0.2  # the chain does move
    assert min(_chi2_pvalues(moved, probs)) > 1e-3


def test_categorical_rows_exact_for_any_reference() -> None:
    """The shift column only stabilises the exponentials: a reference 150 nats below
    the row maximum (clipped exponents, rerun with the maximum) or one of weight zero
    (non-finite shift) gives the same law as the row maximum."""
    logits = jnp.array(
        [[0.0, 1.0, 2.0, -150.0, 0.5, -jnp.inf, 1.5], [3.0, -1.0, 0.0, 2.0, -jnp.inf, 2.5, 1.0]]
    )
    probs = np.asarray(jax.nn.softmax(logits, -1), dtype=float)
    for i, reference in enumerate([None, jnp.array([2, 0]), jnp.array([3, 1]), jnp.array([5, 4])]):
        draws = np.asarray(
            backward.categorical_rows(jax.random.key(10 + i), logits, 3000, reference)
        )
        for row, p in zip(draws, probs):
            counts = np.bincount(row, minlength=p.size)
            assert counts[p < 1e-12].sum() == 0, reference
            keep = p > 1e-12
            expected = p[keep] / p[keep].sum() * row.size
            pvalue = stats.chisquare(counts[keep], expected).pvalue
            assert pvalue > 1e-3, (reference, counts)


def test_row_chunked_draws_match_one_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small log-kernels are exponentiated in row chunks (one kernel per chunk for
    XLA:CPU): with the same uniforms every row draws the same indices as from one
    kernel, including a row whose reference forces the rerun with the row maximum."""
    m, n = 37, 23
    logits = 3.0 * jax.random.normal(jax.random.key(0), (m, n))
    logits = logits.at[5, 7].set(-200.0)
    plain = jnp.arange(m) % n
    rerun = plain.at[5].set(7)
    u = jax.random.uniform(jax.random.key(1), (m, 4))

    def draw(reference):
        return np.asarray(backward._draw_rows(None, lambda: logits, 4, reference, u))

    assert backward._row_chunks(m, n) == 1
    one = [draw(plain), draw(rerun)]
    monkeypatch.setattr(backward, "_CHUNK_ENTRIES", 200)
    assert backward._row_chunks(m, n) == 5
    np.testing.assert_array_equal(draw(plain), one[0])
    np.testing.assert_array_equal(draw(rerun), one[1])
    # Row 5's reference sits 200 nats below its maximum: the rerun gives the same draws.
    np.testing.assert_array_equal(one[0], one[1])


@pytest.mark.parametrize("method", ["exact", "rejection", "mcmc"])
def test_paris_matches_kalman_smoother(method: str) -> None:
    _, ys, _, truth = _setup()
    model = ssm.linear_gaussian_ssm(ssm.scalar_matrices)
    reps = 64

    @jax.jit
    def run(keys):
        return jax.vmap(
            lambda k: (
                paris.run_paris(
                    model, THETA, ys, _h, rng_key=k, num_particles=50, backward=method, max_trials=4
                ).estimate
            )
        )(keys)

    est = np.asarray(run(jax.random.split(jax.random.key(5), reps)), dtype=float)
    se = est.std() / np.sqrt(reps)
    # PaRIS is biased by O(T/N); allow 3% of the value on top of 4 standard errors.
    assert abs(est.mean() - truth) < 4 * se + 0.03 * abs(truth), (est.mean(), truth, se)


@pytest.mark.parametrize(
    ("method", "scheme"),
    [("exact", "multinomial"), ("mcmc", "systematic")],
)
def test_ppg_sweep_from_exact_path_is_unbiased(method: str, scheme: str) -> None:
    """One sweep from an exact posterior path: unbiased estimate, smoother marginals.

    With ``mcmc`` backward draws (one MH move from the ancestor) the path is
    traced through Metropolis-within-Gibbs moves, which keep both properties.
    """
    mats, ys, sm, truth = _setup()
    model = ssm.linear_gaussian_ssm(ssm.scalar_matrices)
    reps = 1000
    paths = ssm.sample_posterior_paths(jax.random.key(8), mats, ys, reps)

    @jax.jit
    def run(keys, paths):
        return jax.vmap(
            lambda k, p: csmc.csmc_sweep(
                k, model, THETA, ys, p, _h, num_particles=8, backward=method, resampling=scheme
            )
        )(keys, paths)

    out = run(jax.random.split(jax.random.key(9), reps), paths)
    est = np.asarray(out.estimate, dtype=float)
    z = (est.mean() - truth) / (est.std() / np.sqrt(reps))
    assert abs(z) < 4.0, (est.mean(), truth, z)
    # With so few particles plain PaRIS is visibly biased; the sweep is not.
    new = np.asarray(out.path[:, :, 0], dtype=float)
    sd = np.sqrt(np.asarray(sm.covs[:, 0, 0]))
    z = (new.mean(0) - np.asarray(sm.means[:, 0])) / (sd / np.sqrt(reps))
    assert np.all(np.abs(z) < 4.0), z
    ratio = new.var(0) / np.asarray(sm.covs[:, 0, 0])
    # Relative sd of a sample variance of n Gaussian draws: sqrt(2/n).
    assert np.all(np.abs(ratio - 1) < 4 * np.sqrt(2 / reps)), ratio


def test_bad_input() -> None:
    _, ys, _, _ = _setup()
    model = ssm.linear_gaussian_ssm(ssm.scalar_matrices)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="num_backward must be an integer >= 1"):
        paris.run_paris(model, THETA, ys, _h, rng_key=key, num_particles=10, num_backward=0)
    with pytest.raises(ValueError, match="num_particles must be an integer >= 2"):
        paris.run_paris(model, THETA, ys, _h, rng_key=key, num_particles=1)
    with pytest.raises(ValueError, match="unknown backward method"):
        paris.run_paris(model, THETA, ys, _h, rng_key=key, num_particles=4, backward="x")
    no_bound = model._replace(transition_logdensity_bound=None)
    with pytest.raises(ValueError, match=r"needs model\.transition_logdensity_bound"):
        paris.run_paris(no_bound, THETA, ys, _h, rng_key=key, num_particles=4, backward="rejection")
    with pytest.raises(ValueError, match="num_burnin must be in"):
        csmc.run_ppg(model, THETA, ys, _h, rng_key=key, num_particles=4, num_sweeps=2, num_burnin=2)
    with pytest.raises(ValueError, match="non-finite"):
        csmc.run_ppg(model, THETA, ys.at[0].set(jnp.inf), _h, rng_key=key, num_particles=4)
    with pytest.raises(ValueError, match="num_mcmc_steps must be an integer >= 1"):
        csmc.run_ppg(
            model, THETA, ys, _h, rng_key=key, num_particles=4, backward="mcmc", num_mcmc_steps=0
        )
