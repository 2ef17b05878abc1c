"""Objectives against exact posteriors and evidences of conjugate models."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from bayes.inference import vi
from scipy import stats

SIGMA, PRIOR_SCALE = 1.0, 2.0
Y = np.random.default_rng(3).normal(1.0, SIGMA, size=10).astype(np.float32)


def model(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, PRIOR_SCALE))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, SIGMA), obs=y)


def exact_posterior():
    precision = 1 / PRIOR_SCALE**2 + Y.size / SIGMA**2
    return float(Y.sum() / SIGMA**2 / precision), float(precision**-0.5)


def log_evidence():
    cov = SIGMA**2 * np.eye(Y.size) + PRIOR_SCALE**2 * np.ones((Y.size, Y.size))
    return float(stats.multivariate_normal(np.zeros(Y.size), cov).logpdf(Y))


def fit(objective, guide, steps=1500, lr=0.05, seed=0):
    schedule = optax.exponential_decay(lr, steps, 0.02)
    alg = vi.build(objective, model, guide, optax.adam(schedule), Y, rng_key=jax.random.key(seed))
    state = alg.init(rng_key=jax.random.key(seed + 1))
    run = jax.jit(vi.run_steps, static_argnums=(0, 3))
    state, info = run(alg.step, state, jax.random.key(seed + 2), steps)
    assert bool(jnp.all(info.is_finite))
    return alg.constrain(state.params), info


def test_meanfield_elbo_gradient_vanishes_at_the_exact_posterior_only():
    mean, sd = exact_posterior()
    guide = vi.make_guide(model, "meanfield")
    sur = vi.surrogate(vi.elbo, model, guide)

    def grads(params):
        def one(key):
            return jax.grad(lambda p: sur.loss(p, (None, None), Y, rng_key=key)[0])(params)

        g = jax.vmap(one)(jax.random.split(jax.random.key(0), 4000))
        return {k: (np.mean(v), np.std(v) / np.sqrt(v.shape[0])) for k, v in g.items()}

    g_opt = jax.jit(grads)({"vi_loc": jnp.array([mean]), "vi_scale": jnp.array([sd])})
    g_off = jax.jit(grads)({"vi_loc": jnp.array([mean + sd]), "vi_scale": jnp.array([sd])})
    for m, se in g_opt.values():
        assert abs(m) < 4 * se + 1e-4
    m, se = g_off["vi_loc"]
    # Exact d ELBO / d loc = -(loc - mean) / sd^2.
    assert abs(m - (-1.0 / sd)) < 4 * se


@pytest.mark.parametrize("family", ["meanfield", "fullrank", "lowrank"])
def test_gaussian_guides_recover_the_conjugate_posterior(family):
    mean, sd = exact_posterior()
    guide = vi.make_guide(model, family)
    params, _ = fit(vi.elbo, guide)
    loc = float(params["vi_loc"][0])
    if family == "meanfield":
        scale = float(params["vi_scale"][0])
    elif family == "fullrank":
        scale = float(params["vi_scale_tril"][0, 0])
    else:
        scale = float(np.sqrt(params["vi_cov_factor"][0] @ params["vi_cov_factor"][0]
                              + params["vi_cov_diag"][0]))  # fmt: skip
    assert loc == pytest.approx(mean, abs=0.05 * sd)
    assert scale == pytest.approx(sd, rel=0.05)


def test_iwelbo_rises_towards_the_log_evidence():
    mean, sd = exact_posterior()
    guide = vi.make_guide(model, "meanfield")
    # A guide off the posterior, so that the bounds are loose.
    params = {"vi_loc": jnp.array([mean + sd]), "vi_scale": jnp.array([1.5 * sd])}
    reps = 2000

    def estimates(k):
        program = vi.iwelbo(k)
        keys = jax.random.split(jax.random.key(k), reps)
        return jax.vmap(lambda key: program(model, guide, params, Y, rng_key=key))(keys)

    truth = log_evidence()
    means, ses = [], []
    for k in (1, 10, 100):
        est = np.asarray(jax.jit(estimates, static_argnums=0)(k), dtype=np.float64)
        means.append(est.mean())
        ses.append(est.std() / np.sqrt(reps))
    for a, b, sa, sb in zip(means, means[1:], ses, ses[1:]):
        assert b > a + 3 * np.hypot(sa, sb)
    assert means[-1] < truth + 3 * ses[-1]
    assert truth - means[-1] < 0.1 * (truth - means[0])


def test_beta_bernoulli_with_the_score_function_only():
    x = np.array([1, 0, 1, 1, 1, 0, 1, 1, 0, 1], dtype=np.float32)

    def bb_model(x):
        p = numpyro.sample("p", dist.Beta(2.0, 2.0))
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("x", dist.Bernoulli(p), obs=x)

    def bb_guide(x):
        a = numpyro.param("a", 2.0, constraint=dist.constraints.positive)
        b = numpyro.param("b", 2.0, constraint=dist.constraints.positive)
        numpyro.sample("p", dist.Beta(a, b), infer={"estimator": "score"})

    steps = 4000
    opt = optax.adam(optax.exponential_decay(0.05, steps, 0.05))
    alg = vi.build(vi.iwelbo(1), bb_model, bb_guide, opt, x, rng_key=jax.random.key(0),
                   baseline=vi.running_mean_baseline(0.95))  # fmt: skip
    state = alg.init(rng_key=jax.random.key(1))
    state, _ = jax.jit(vi.run_steps, static_argnums=(0, 3))(
        alg.step, state, jax.random.key(2), steps
    )
    params = alg.constrain(state.params)
    a_post, b_post = 2 + x.sum(), 2 + x.size - x.sum()
    a, b = float(params["a"]), float(params["b"])
    assert a / (a + b) == pytest.approx(a_post / (a_post + b_post), abs=0.02)
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    var_post = a_post * b_post / ((a_post + b_post) ** 2 * (a_post + b_post + 1))
    assert np.sqrt(var) == pytest.approx(np.sqrt(var_post), rel=0.15)


def test_mixture_assignments_enumerated_recover_the_posterior():
    x = np.array([-2.5, -0.3, 0.4, 2.2], dtype=np.float32)
    weight, means = 0.4, np.array([-1.0, 1.0], dtype=np.float32)

    def mix_model(x):
        with numpyro.plate("obs", x.shape[0]):
            z = numpyro.sample("z", dist.Bernoulli(weight))
            numpyro.sample("x", dist.Normal(jnp.asarray(means)[z.astype(jnp.int32)], 1.0), obs=x)

    def mix_guide(x):
        logits = numpyro.param("logits", jnp.zeros(x.shape[0]))
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("z", dist.Bernoulli(logits=logits), infer={"estimator": "enum"})

    alg = vi.build(vi.elbo, mix_model, mix_guide, optax.adam(0.3), x, rng_key=jax.random.key(0))
    state = alg.init(rng_key=jax.random.key(1))
    state, info = jax.jit(vi.run_steps, static_argnums=(0, 3))(
        alg.step, state, jax.random.key(2), 1500
    )
    probs = jax.nn.sigmoid(alg.constrain(state.params)["logits"])
    lik1 = weight * stats.norm.pdf(x, means[1], 1.0)
    exact = lik1 / (lik1 + (1 - weight) * stats.norm.pdf(x, means[0], 1.0))
    np.testing.assert_allclose(np.asarray(probs), exact, atol=2e-3)
    # The enumerated ELBO is exact: at the optimum it equals the log evidence.
    evidence = np.sum(np.log(weight * stats.norm.pdf(x, means[1], 1.0)
                             + (1 - weight) * stats.norm.pdf(x, means[0], 1.0)))  # fmt: skip
    assert float(info.objective[-1]) == pytest.approx(evidence, abs=1e-3)
