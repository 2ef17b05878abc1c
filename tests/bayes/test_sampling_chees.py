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
from bayes.inference.mcmc import Tuning

import bayes

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


def test_chees_badly_scaled_regression_matches_exact_posterior(x64):
    start = {"beta": jnp.zeros(2), "log_sigma": jnp.zeros(())}
    idata = bayes.sample(regression_logdensity, {"x": X, "y": Y}, initial_position=start,
                         method="chees", num_chains=16, num_warmup=400, num_samples=250,
                         seed=1, progress=False)  # fmt: skip
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
