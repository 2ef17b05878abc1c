"""Per-site gradient estimators: unbiasedness against closed-form gradients, variance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from bayes.inference import vi

NUM_REPS = 20000
C = 0.7


def normal_guide(estimator):
    def guide():
        m = numpyro.param("m", 0.3)
        s = numpyro.param("s", 0.8, constraint=dist.constraints.positive)
        numpyro.sample("z", dist.Normal(m, s), infer={"estimator": estimator})

    return guide


def bernoulli_guide(estimator):
    def guide():
        theta = numpyro.param("theta", 0.4)
        numpyro.sample("z", dist.Bernoulli(logits=theta), infer={"estimator": estimator})

    return guide


def quadratic(model, guide, params, *, rng_key):
    # E[-(z - C)^2] under N(m, s^2) is -((m - C)^2 + s^2).
    draw = vi.guide_draw(guide, params, rng_key=rng_key)
    return -((draw.values["z"] - C) ** 2)


def normal_exact(params):
    m, s = params["m"], params["s"]
    return {"m": -2.0 * (m - C), "s": -2.0 * s}


def bernoulli_exact(params):
    p = jax.nn.sigmoid(params["theta"])
    # E[(z - C)^2] = p (1 - C)^2 + (1 - p) C^2, times -1 as in `quadratic`.
    return {"theta": -p * (1 - p) * ((1 - C) ** 2 - C**2)}


def gradient_samples(guide, params, baseline=None, baseline_state=None):
    sur = vi.surrogate(quadratic, None, guide, baseline=baseline)
    state = (baseline_state, None)

    def one(key):
        return jax.grad(lambda p: sur.loss(p, state, rng_key=key)[0])(params)

    keys = jax.random.split(jax.random.key(0), NUM_REPS)
    return jax.jit(jax.vmap(one))(keys)


def assert_unbiased(samples, exact):
    for name, g in samples.items():
        g = np.asarray(g, dtype=np.float64)
        se = g.std() / np.sqrt(g.size)
        assert abs(g.mean() - float(exact[name])) < 4 * se + 1e-6, (name, g.mean(), exact[name], se)


NORMAL_PARAMS = {"m": jnp.array(0.3), "s": jnp.array(0.8)}
BERN_PARAMS = {"theta": jnp.array(0.4)}


@pytest.mark.parametrize("estimator", ["reparam", "score"])
def test_normal_site_estimators_are_unbiased(estimator):
    samples = gradient_samples(normal_guide(estimator), NORMAL_PARAMS)
    assert_unbiased(samples, normal_exact(NORMAL_PARAMS))


def test_score_function_with_baselines_is_unbiased_and_lower_variance():
    guide = normal_guide("score")
    plain = gradient_samples(guide, NORMAL_PARAMS)
    base = vi.running_mean_baseline(0.9)
    # A running mean that has seen E[f] once: the baseline equals E[f].
    expected_f = -((0.3 - C) ** 2 + 0.8**2)
    state = base.update(base.init(), jnp.asarray(expected_f))
    assert float(base.value(state, {}, (), {})) == pytest.approx(expected_f, rel=1e-6)
    with_base = gradient_samples(guide, NORMAL_PARAMS, base, state)
    exact = normal_exact(NORMAL_PARAMS)
    assert_unbiased(with_base, exact)
    for name in exact:
        ratio = float(jnp.var(with_base[name]) / jnp.var(plain[name]))
        assert ratio < 0.8, (name, ratio)


def test_learned_baseline_is_unbiased_and_trained_by_least_squares():
    guide = normal_guide("score")
    base = vi.learned_baseline(lambda b: b, jnp.asarray(-0.2))
    params = {**NORMAL_PARAMS, "_baseline": jnp.asarray(-0.2)}
    samples = gradient_samples(guide, params, base, ())
    assert_unbiased({k: samples[k] for k in ("m", "s")}, normal_exact(NORMAL_PARAMS))
    # d/db of -(f - b)^2 / 2 is E[f] - b.
    expected_f = -((0.3 - C) ** 2 + 0.8**2)
    assert_unbiased({"_baseline": samples["_baseline"]}, {"_baseline": expected_f + 0.2})


def test_bernoulli_score_and_mvd_are_unbiased_and_enumeration_is_exact():
    exact = bernoulli_exact(BERN_PARAMS)
    score = gradient_samples(bernoulli_guide("score"), BERN_PARAMS)
    assert_unbiased(score, exact)
    mvd = gradient_samples(bernoulli_guide("mvd"), BERN_PARAMS)
    # With no other randomness the measure-valued derivative is exact.
    np.testing.assert_allclose(np.asarray(mvd["theta"]), float(exact["theta"]), rtol=1e-5)
    enum = gradient_samples(bernoulli_guide("enum"), {"theta": BERN_PARAMS["theta"]})
    np.testing.assert_allclose(np.asarray(enum["theta"]), float(exact["theta"]), rtol=1e-5)


def test_reparam_on_a_discrete_site_is_a_clear_error():
    sur = vi.surrogate(quadratic, None, bernoulli_guide("reparam"))
    with pytest.raises(ValueError, match=r"site 'z'.*reparameterised"):
        sur.loss(BERN_PARAMS, (None, None), rng_key=jax.random.key(0))


def test_expectation_nests_and_enumerates_a_plate():
    # Sum of independent Bernoulli sites in a plate, enumerated jointly (2^3 values).
    def guide():
        theta = numpyro.param("theta", jnp.array([0.1, -0.5, 1.0]))
        with numpyro.plate("n", 3):
            numpyro.sample("z", dist.Bernoulli(logits=theta), infer={"estimator": "enum"})

    def program(params, *, rng_key):
        z = vi.guide_draw(guide, params, rng_key=rng_key).values["z"]
        return jnp.sum(z * jnp.arange(1.0, 4.0)) ** 2

    params = {"theta": jnp.array([0.1, -0.5, 1.0])}
    est = vi.expectation(program)
    value, grad = jax.value_and_grad(lambda p: est(p, rng_key=jax.random.key(1)))(params)

    def exact(p):
        probs = jax.nn.sigmoid(p["theta"])
        w = jnp.arange(1.0, 4.0)
        mean = jnp.sum(w * probs)
        return mean**2 + jnp.sum(w**2 * probs * (1 - probs))

    np.testing.assert_allclose(value, exact(params), rtol=1e-5)
    np.testing.assert_allclose(grad["theta"], jax.grad(exact)(params)["theta"], rtol=1e-4)


def test_mvd_on_a_categorical_plate_is_unbiased_with_lower_variance_than_score():
    weights = jnp.array([0.5, -1.0, 2.0])

    def guide_with(estimator):
        def guide():
            logits = numpyro.param("logits", jnp.zeros((2, 3)))
            with numpyro.plate("n", 2):
                numpyro.sample("z", dist.Categorical(logits=logits),
                               infer={"estimator": estimator})  # fmt: skip

        return guide

    def program(model, guide, params, *, rng_key):
        k1, k2 = jax.random.split(rng_key)
        z = vi.guide_draw(guide, params, rng_key=k1).values["z"]
        noise = jax.random.normal(k2)  # other randomness the branches share
        return (jnp.sum(weights[z]) + noise) ** 2

    params = {"logits": jnp.array([[0.2, -0.3, 0.1], [1.0, 0.0, -1.0]])}

    def exact(p):
        probs = jax.nn.softmax(p["logits"], axis=-1)
        mean = probs @ weights
        var = probs @ weights**2 - mean**2
        return jnp.sum(mean) ** 2 + jnp.sum(var) + 1.0

    grads = {}
    for est in ("mvd", "score"):
        sur = vi.surrogate(program, None, guide_with(est))

        def one(key, sur=sur):
            return jax.grad(lambda p: sur.loss(p, (None, None), rng_key=key)[0])(params)

        keys = jax.random.split(jax.random.key(3), 4000)
        grads[est] = jax.jit(jax.vmap(one))(keys)["logits"]
    truth = jax.grad(exact)(params)["logits"]
    g = np.asarray(grads["mvd"], dtype=np.float64)
    se = g.std(axis=0) / np.sqrt(g.shape[0])
    assert np.all(np.abs(g.mean(axis=0) - np.asarray(truth)) < 4 * se + 1e-5)
    assert float(jnp.var(grads["mvd"], axis=0).sum()) < 0.5 * float(
        jnp.var(grads["score"], axis=0).sum()
    )
