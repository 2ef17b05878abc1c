"""Renyi, reweighted wake-sleep, Markov score climbing and hierarchical VI on a conjugate model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from bayes.inference import vi

SIGMA, PRIOR_SCALE = 1.0, 2.0
Y = np.random.default_rng(3).normal(1.0, SIGMA, size=10).astype(np.float32)
PRECISION = 1 / PRIOR_SCALE**2 + Y.size / SIGMA**2
MEAN, SD = float(Y.sum() / SIGMA**2 / PRECISION), float(PRECISION**-0.5)


def model(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, PRIOR_SCALE))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, SIGMA), obs=y)


def run(objective, guide, steps, lr=0.05, seed=0):
    schedule = optax.exponential_decay(lr, steps, 0.02)
    alg = vi.build(objective, model, guide, optax.adam(schedule), Y, rng_key=jax.random.key(seed))
    state = alg.init(rng_key=jax.random.key(seed + 1))
    state, info = jax.jit(vi.run_steps, static_argnums=(0, 3))(
        alg.step, state, jax.random.key(seed + 2), steps
    )
    assert bool(jnp.all(info.is_finite))
    return alg.constrain(state.params), info


@pytest.mark.parametrize(
    "name, objective",
    [
        ("renyi", vi.renyi(0.5, 5)),
        ("rws", vi.rws_wake_phi(10)),
        ("msc", vi.markov_score_climbing(num_particles=5)),
    ],
)
def test_objective_recovers_the_conjugate_posterior(name, objective):
    # The posterior is in the family, so every objective is optimal there.
    params, _ = run(objective, vi.make_guide(model, "meanfield"), 1500)
    assert float(params["vi_loc"][0]) == pytest.approx(MEAN, abs=0.1 * SD), name
    assert float(params["vi_scale"][0]) == pytest.approx(SD, rel=0.1), name


def test_msc_accepts_any_posterior_invariant_kernel():
    # A random-walk Metropolis kernel on mu, written by the caller.
    def rwm(rng_key, position, model_, guide, params, y):
        k1, k2 = jax.random.split(rng_key)
        proposal = dict(position)
        proposal["mu"] = position["mu"] + 0.5 * SD * jax.random.normal(k1)
        log_p = vi.model_log_density(model_, {"mu": proposal["mu"]}, params, y)
        log_p0 = vi.model_log_density(model_, {"mu": position["mu"]}, params, y)
        accept = jnp.log(jax.random.uniform(k2)) < log_p - log_p0
        return {"mu": jnp.where(accept, proposal["mu"], position["mu"])}

    def guide(y):
        m = numpyro.param("m", 0.0)
        s = numpyro.param("s", 1.0, constraint=dist.constraints.positive)
        numpyro.sample("mu", dist.Normal(m, s))

    params, _ = run(vi.markov_score_climbing(rwm), guide, 3000, lr=0.02)
    assert float(params["m"]) == pytest.approx(MEAN, abs=0.15 * SD)
    assert float(params["s"]) == pytest.approx(SD, rel=0.2)


def test_hierarchical_vi_marginal_matches_the_posterior():
    def guide(y):
        a = numpyro.param("a", 0.0)
        s1 = numpyro.param("s1", 0.5, constraint=dist.constraints.positive)
        s2 = numpyro.param("s2", 0.5, constraint=dist.constraints.positive)
        lam = numpyro.sample("lam", dist.Normal(a, s1), infer={"is_auxiliary": True})
        numpyro.sample("mu", dist.Normal(lam, s2))

    def reverse(values, y):
        c = numpyro.param("r_c", 0.5)
        d = numpyro.param("r_d", 0.0)
        s = numpyro.param("r_s", 0.5, constraint=dist.constraints.positive)
        return dist.Normal(c * values["mu"] + d, s)

    params, _ = run(vi.hierarchical_elbo("lam", reverse, num_aux=4), guide, 2500)
    marginal_sd = float(np.hypot(params["s1"], params["s2"]))
    assert float(params["a"]) == pytest.approx(MEAN, abs=0.1 * SD)
    assert marginal_sd == pytest.approx(SD, rel=0.1)
