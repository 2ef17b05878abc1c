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
    """Killed after the window phase (t=100) and after ChEES (t=400), it ends as if never."""
    checkpoint, seen = tmp_path / "run.ckpt", []
    for call, stop_at in enumerate((100, 400, None)):

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
    # window phase: 100 steps in one chunk; then ChEES to 400 in one call; then sampling
    assert seen == [100, 400, 500]
    for name in ("beta", "log_sigma"):
        np.testing.assert_array_equal(resumed.posterior[name], regression_run.posterior[name])
    assert resumed.posterior.attrs["compile_s"] == 0.0  # same programs as the first run


def test_preconditioned_tuning_maps_back_to_original_coordinates():
    """ChEES on z = x / s with inverse mass D is returned as inverse mass s^2 D on x."""
    from bayes.inference.mcmc.chees import chees_warmup

    mean, sd = jnp.array([26.0, 0.6, 2.9]), jnp.array([10.0, 0.1, 0.01])

    def logdensity(x):
        return -0.5 * jnp.sum(((x - mean) / sd) ** 2)

    num_chains = 8
    positions = mean + sd * jax.random.normal(jax.random.key(0), (num_chains, 3))
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
