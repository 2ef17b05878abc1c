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
