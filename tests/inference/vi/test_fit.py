"""The VI front end: bayes.sample(method="vi"), PSIS k-hat, convergence, NaN guard."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from bayes.inference import vi
from bayes.models.conjugate import exact_posterior, model, simulate

import bayes
from bayes.vi_sampling import NonFiniteError, VIResult, fit, khat_verdict

Y = simulate(20, seed=4).astype(np.float32)
MEAN, SD = exact_posterior(Y)


def test_sample_method_vi_returns_inference_data_near_the_posterior():
    idata = bayes.sample(
        model, {"y": Y}, method="vi", num_chains=2, num_samples=500, seed=1,
        num_steps=1500, learning_rate=0.05, progress=False,
    )  # fmt: skip
    draws = idata.posterior["mu"]
    assert draws.shape == (2, 500)
    # Tolerance: optimisation noise of the fitted mean (about 0.1 sd) plus Monte Carlo error.
    assert float(draws.mean()) == pytest.approx(MEAN, abs=0.15 * SD + 4 * SD / np.sqrt(1000))
    assert float(draws.std()) == pytest.approx(SD, rel=0.2)
    assert idata.log_likelihood["y"].shape == (2, 500, Y.size)
    attrs = idata.posterior.attrs
    assert attrs["method"] == "vi" and attrs["k_hat"] < 0.5
    assert attrs["k_hat_verdict"].startswith("good")


def test_psis_khat_separates_good_and_poor_guides():
    guide = vi.make_guide(model, "meanfield")

    def result(loc, scale):
        params = {"vi_loc": jnp.array([loc]), "vi_scale": jnp.array([scale])}
        return VIResult(params, np.zeros(1), True, False, model, guide, {"y": Y})

    good, verdict = result(MEAN, SD).psis(2000, rng_key=jax.random.key(0))
    assert good < 0.5 and verdict.startswith("good")
    poor, verdict = result(MEAN + 2 * SD, 0.3 * SD).psis(2000, rng_key=jax.random.key(0))
    assert poor > 0.7 and verdict.startswith("poor")
    assert khat_verdict(0.6).startswith("acceptable")


def test_fit_detects_convergence_and_keeps_the_objective_trace():
    result = fit(model, {"y": Y}, num_steps=20000, learning_rate=0.05, chunk_size=200,
                 progress=False)  # fmt: skip
    assert result.converged and result.objective.size < 20000
    assert result.objective.size % 200 == 0
    first, last = result.objective[:200].mean(), result.objective[-200:].mean()
    assert last > first
    assert float(result.params["vi_loc"][0]) == pytest.approx(MEAN, abs=0.25 * SD)


def test_nonfinite_step_stops_and_names_the_site():
    def bad_model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        # log of a negative number: the likelihood is NaN wherever mu < 5.
        numpyro.sample("y", dist.Normal(jnp.log(mu - 5.0), 1.0), obs=y)

    with pytest.raises(NonFiniteError, match=r"model site 'y'") as err:
        fit(bad_model, {"y": jnp.zeros(())}, num_steps=50, chunk_size=50, progress=False)
    assert err.value.result.objective.size == 0
    assert "vi_loc" in err.value.result.params


def test_a_nonfinite_gradient_is_caught_at_its_step():
    def sqrt_model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        # The objective is finite everywhere, but where mu < 0 the gradient is
        # 0 * NaN (through the branch not taken): NaN.
        numpyro.sample("y", dist.Normal(jnp.where(mu < 0, 0.0, jnp.sqrt(mu)), 1.0), obs=y)

    with pytest.raises(NonFiniteError, match=r"parameter 'vi_loc' \(gradient\)") as err:
        fit(sqrt_model, {"y": jnp.ones(())}, num_steps=50, chunk_size=50, progress=False)
    step = int(re.match(r"VI step (\d+):", str(err.value)).group(1))
    partial = err.value.result
    # Stopped at the first bad step: every earlier objective is kept, the fit is finite.
    assert partial.objective.size == step and np.isfinite(partial.objective).all()
    assert all(np.isfinite(np.asarray(v)).all() for v in partial.params.values())


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="unknown objective 'elbow'"):
        fit(model, {"y": Y}, objective="elbow", progress=False)
    with pytest.raises(ValueError, match="unknown guide 'diagonal'"):
        fit(model, {"y": Y}, guide="diagonal", progress=False)
