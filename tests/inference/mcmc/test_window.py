"""Stan's window adaptation as a per-step update: schedule and mass-matrix estimate."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from bayes.inference.mcmc import schedule, window_adaptation
from blackjax.adaptation.window_adaptation import build_schedule


def test_schedule_is_stans():
    stage, window_end = schedule(1000)
    ref = np.asarray(build_schedule(1000))
    np.testing.assert_array_equal(stage, ref[:, 0])
    np.testing.assert_array_equal(window_end, ref[:, 1].astype(bool))
    assert stage[:75].sum() == 0 and stage[-50:].sum() == 0  # fast buffers
    assert window_end.sum() == 5  # slow windows of 25, 50, 100, 200 and 500 steps
    assert schedule(0)[0].shape == (0,)


def test_mass_matrix_is_the_regularised_variance_of_the_last_slow_window():
    num_warmup, scales = 1000, jnp.array([0.1, 1.0, 10.0])
    stage, window_end = schedule(num_warmup)
    init, update, final = window_adaptation(target_acceptance_rate=0.8)
    draws = scales * jax.random.normal(jax.random.key(0), (num_warmup, 3))

    def body(state, xs):
        st, we, x = xs
        return update(state, st, we, x, jnp.asarray(0.8)), None

    state, _ = jax.lax.scan(body, init(3, 1.0), (stage, window_end, draws))
    state = final(state)
    last = np.flatnonzero(window_end)[-1]
    start = np.flatnonzero(window_end)[-2] + 1
    window = np.asarray(draws[start : last + 1])
    n = len(window)
    expected = n / (n + 5.0) * window.var(axis=0, ddof=1) + 1e-3 * 5.0 / (n + 5.0)
    np.testing.assert_allclose(state.inverse_mass_matrix, expected, rtol=1e-4)


def test_nuts_warmup_with_blackjax_keys_is_blackjax_window_adaptation():
    """Fed the keys BlackJAX's ``run`` uses, our per-step warmup is it, bit for bit.

    So any difference between ``bayes.sample`` and BlackJAX's NUTS with window
    adaptation at a fixed seed comes from the random streams (ours: key of step
    ``t`` is ``fold_in(key, t)``, split over chains), not from the algorithm.
    """
    import blackjax
    from bayes.inference.mcmc import build_step
    from blackjax.mcmc.hmc import HMCState

    num_warmup, num_chains, scales = 150, 2, jnp.array([0.1, 1.0, 10.0])

    def logdensity(x):
        return -0.5 * jnp.sum((x / scales) ** 2)

    stage, window_end = schedule(num_warmup)
    init, step = build_step("nuts")
    positions = 3.0 * jax.random.normal(jax.random.key(0), (num_chains, 3))

    def ours(key, position):
        state = init(HMCState(position, *jax.value_and_grad(logdensity)(position)), 1.0)
        xs = (jax.random.split(key, num_warmup), jnp.arange(num_warmup), stage, window_end)

        def body(s, x):
            k, t, st, we = x
            return step(k, s, logdensity, t, num_warmup, st, we)[0], None

        state = jax.lax.scan(body, state, xs)[0]
        return state.kernel, state.tuning.step_size, state.tuning.inverse_mass_matrix

    def theirs(key, position):
        warmup = blackjax.window_adaptation(blackjax.nuts, logdensity)
        (state, params), _ = warmup.run(key, position, num_steps=num_warmup)
        return state, params["step_size"], params["inverse_mass_matrix"]

    keys = jax.random.split(jax.random.key(1), num_chains)
    a = jax.jit(jax.vmap(ours))(keys, positions)
    b = jax.jit(jax.vmap(theirs))(keys, positions)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert np.all(np.abs(np.log(a[2] / scales**2)) < 1.5)  # a real estimate, not the identity


def test_prefer_dense_separates_correlation_from_sampling_noise():
    from bayes.inference.mcmc import prefer_dense

    rng = np.random.default_rng(0)
    n, d = 500, 40
    # independent coordinates of very different scales: a dense estimate only adds noise
    iid = rng.normal(size=(n, d)) * np.exp(np.linspace(-3, 3, d))
    assert not bool(prefer_dense(jnp.asarray(np.cov(iid.T)), n))
    # the same with an AR(1) correlation of 0.7 between neighbours: kappa(R) about 30
    ar = np.zeros((n, d))
    ar[:, 0] = rng.normal(size=n)
    for j in range(1, d):
        ar[:, j] = 0.7 * ar[:, j - 1] + np.sqrt(1 - 0.7**2) * rng.normal(size=n)
    assert bool(prefer_dense(jnp.asarray(np.cov(ar.T)), n))
    # fewer draws than dimensions: never dense, however correlated
    assert not bool(prefer_dense(jnp.asarray(np.cov(ar[: d - 1].T)), d - 1))


def test_select_dense_keeps_the_diagonal_estimate_of_uncorrelated_draws():
    """Where the correlations are noise, the window ends with the diagonal adaptation's estimate."""
    num_warmup, scales = 1000, jnp.array([0.1, 1.0, 10.0])
    stage, window_end = schedule(num_warmup)
    draws = scales * jax.random.normal(jax.random.key(0), (num_warmup, 3))
    results = []
    for kwargs in ({}, {"is_mass_matrix_diagonal": False, "select_dense": True}):
        init, update, final = window_adaptation(target_acceptance_rate=0.8, **kwargs)

        def body(state, xs, update=update):
            st, we, x = xs
            return update(state, st, we, x, jnp.asarray(0.8)), None

        state, _ = jax.lax.scan(body, init(3, 1.0), (stage, window_end, draws))
        results.append(final(state).inverse_mass_matrix)
    diagonal, selected = results
    assert selected.shape == (3, 3)
    np.testing.assert_allclose(np.diag(selected), diagonal, rtol=1e-10)
    np.testing.assert_array_equal(selected - np.diag(np.diag(selected)), 0.0)


def test_select_dense_needs_a_dense_matrix():
    import pytest

    with pytest.raises(ValueError, match="dense"):
        window_adaptation(select_dense=True)
