"""ChEES-HMC on a badly scaled, strongly correlated regression from dispersed starting points.

The target mimics posteriordb's ``kidiq`` regression: an uncentred predictor
(mean 100, sd 15), so the intercept (sd ~6) and slope (sd ~0.06) are 100x
apart in scale at correlation -0.99, with a flat prior on ``(beta, log
sigma)``. Starting near the origin the gradient is ~1e7: the case where
ChEES without the per-chain window-adaptation phase collapsed its shared
step size to ~3e-4 and ran every trajectory at the 1000-leapfrog cap. With
that prior the posterior of ``beta`` is exactly Student-t with N - 2 degrees
of freedom around the least-squares estimate.
"""

from __future__ import annotations

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bayes.inference.mcmc import Tuning

import bayes
from bayes import sampling

N = 434
_rng = np.random.default_rng(0)
X = np.stack([np.ones(N), _rng.normal(100.0, 15.0, N)], axis=1)
Y = X @ np.array([26.0, 0.6]) + 18.0 * _rng.standard_normal(N)
BETA_HAT = np.linalg.lstsq(X, Y, rcond=None)[0]
S2 = np.sum((Y - X @ BETA_HAT) ** 2) / (N - 2)
BETA_COV = S2 * np.linalg.inv(X.T @ X) * (N - 2) / (N - 4)  # Student-t_{N-2} covariance


def regression_logdensity(theta, x, y):
    r = y - x @ theta["beta"]
    return -N * theta["log_sigma"] - 0.5 * jnp.sum(r**2) * jnp.exp(-2.0 * theta["log_sigma"])


RUN = dict(initial_position={"beta": jnp.zeros(2), "log_sigma": jnp.zeros(())},
           method="chees", num_chains=16, num_warmup=400, num_samples=250, seed=1,
           progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def regression_run():
    with jax.enable_x64(True):
        return bayes.sample(regression_logdensity, {"x": X, "y": Y}, **RUN)


def test_chees_badly_scaled_regression_matches_exact_posterior(regression_run):
    idata = regression_run
    beta = idata.posterior["beta"].values  # (16, 250, 2)
    for i in range(2):
        b = beta[..., i]
        sq = (b - BETA_HAT[i]) ** 2
        mcse, mcse_sq = (float(np.ravel(az.mcse(v))[0]) for v in (b, sq))
        assert abs(b.mean() - BETA_HAT[i]) < 5 * mcse, (i, b.mean(), BETA_HAT[i], mcse)
        assert abs(sq.mean() - BETA_COV[i, i]) < 5 * mcse_sq, (i, sq.mean(), BETA_COV[i, i])
    # the adapted trajectories stay far below the 1000-leapfrog cap
    assert float(idata.sample_stats["n_steps"].mean()) < 100
    assert int(idata.sample_stats["diverging"].sum()) == 0


def test_chees_resumes_across_both_warmup_phases(regression_run, tmp_path, monkeypatch):
    """Killed after the window phase (t=100), inside ChEES (t=200) and after it (t=400).

    It ends as if never interrupted.
    """
    checkpoint, seen = tmp_path / "run.ckpt", []
    for call, stop_at in enumerate((100, 200, 400, None)):

        def after_chunk(progress, stop_at=stop_at, call=call):
            if len(seen) == call:
                seen.append(progress["t"])  # the first chunk each call completes
            if progress["t"] == stop_at:
                raise KeyboardInterrupt  # no draws yet: propagates, checkpoint kept

        monkeypatch.setattr(sampling, "_after_chunk", after_chunk)
        with jax.enable_x64(True):
            if stop_at is None:
                resumed = bayes.sample(regression_logdensity, {"x": X, "y": Y},
                                       checkpoint=checkpoint, **RUN)  # fmt: skip
                continue
            with pytest.raises(KeyboardInterrupt):
                bayes.sample(regression_logdensity, {"x": X, "y": Y}, checkpoint=checkpoint, **RUN)
    # window phase: 100 steps in one chunk; then ChEES in chunks of 100 to 400; then sampling
    assert seen == [100, 200, 300, 500]
    for name in ("beta", "log_sigma"):
        np.testing.assert_array_equal(resumed.posterior[name], regression_run.posterior[name])
    assert resumed.posterior.attrs["compile_s"] == 0.0  # same programs as the first run


def test_preconditioned_tuning_maps_back_to_original_coordinates():
    """ChEES on z = x / s with inverse mass D is returned as inverse mass s^2 D on x."""
    from bayes.inference.mcmc.chees import chees_warmup

    logdensity, positions = _gaussian_chees_problem()
    sd, num_chains = jnp.array([10.0, 0.1, 0.01]), 8
    imm = jnp.broadcast_to(sd**2, (num_chains, 3))

    @jax.jit
    def warmup(positions):
        return chees_warmup(logdensity, positions, imm, jnp.full(num_chains, 0.5),
                            rng_key=jax.random.key(1), num_steps=20)  # fmt: skip

    state = warmup(positions)
    assert isinstance(state.tuning, Tuning)
    value, grad = jax.vmap(jax.value_and_grad(logdensity))(state.kernel.position)
    np.testing.assert_allclose(state.kernel.logdensity, value, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(state.kernel.logdensity_grad, grad, rtol=1e-3, atol=1e-2)
    ratio = state.tuning.inverse_mass_matrix / sd**2  # ChEES' own diagonal estimate on z
    assert np.all((ratio > 0.1) & (ratio < 10)), ratio


def _gaussian_chees_problem():
    mean, sd = jnp.array([26.0, 0.6, 2.9]), jnp.array([10.0, 0.1, 0.01])

    def logdensity(x):
        return -0.5 * jnp.sum(((x - mean) / sd) ** 2)

    positions = mean + sd * jax.random.normal(jax.random.key(0), (8, 3))
    return logdensity, positions


def test_stepwise_chees_equals_blackjax_run_and_any_chunking():
    """Identity preconditioner: the step-wise ChEES phase is BlackJAX's ``run``, bit for bit.

    Cut into chunks of 37, 63 and 50 steps it gives the same state as in one call.
    """
    import blackjax
    import optax
    from bayes.inference.mcmc.chees import chees_adaptation, chees_run_chunk
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    logdensity, positions = _gaussian_chees_problem()
    num_chains, num_steps, key = 8, 150, jax.random.key(1)
    ones = jnp.ones((num_chains, 3))

    @jax.jit
    def reference(positions):
        warmup = blackjax.chees_adaptation(
            logdensity, num_chains, mass_matrix_estimation="diagonal",
            adaptation_info_fn=get_filter_adapt_info_fn(),
        )  # fmt: skip
        (states, params), _ = warmup.run(key, positions, jnp.asarray(0.5), optax.adam(0.025),
                                         num_steps, max_sampling_steps=100)  # fmt: skip
        return states, params["step_size"], params["inverse_mass_matrix"], params[
            "integration_steps_params"][0]  # fmt: skip

    init, step, final = chees_adaptation(logdensity, positions[0], num_steps=num_steps,
                                         max_sampling_steps=100)  # fmt: skip

    @jax.jit
    def chunked(positions):
        whole = init(positions, ones, jnp.full(num_chains, 0.5))
        cut = whole
        for lo, hi in ((0, 37), (37, 100), (100, 150)):
            cut, _ = chees_run_chunk(step, cut, key, jnp.arange(lo, hi), num_steps)
        whole, info = chees_run_chunk(step, whole, key, jnp.arange(num_steps), num_steps)
        return final(whole), final(cut), info

    (states, step_size, imm, length), (whole, cut, info) = reference(positions), chunked(positions)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(cut)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(whole.kernel.position, states.position)
    np.testing.assert_array_equal(whole.kernel.logdensity_grad, states.logdensity_grad)
    np.testing.assert_array_equal(whole.tuning.step_size[0], step_size)
    np.testing.assert_array_equal(whole.tuning.inverse_mass_matrix[0], imm)
    np.testing.assert_array_equal(whole.tuning.num_integration_steps[0], length)
    assert info.n_steps.shape == (num_steps, num_chains) and int(info.n_steps.min()) >= 1
