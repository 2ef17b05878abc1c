"""Posteriors over the weights of a Bayesian MLP regression: NUTS, mean-field VI, deep ensembles.

The model, on standardized outputs ``y`` (``n x m``) and inputs ``x`` (``n x d``):

.. math::

    w \\sim N(0, \\mathrm{diag}(s^2)), \\quad
    \\log \\sigma_j \\sim N(\\mu_\\sigma, \\tau^2), \\quad
    y_{ij} \\mid w, \\sigma \\sim N(f_w(x_i)_j, \\sigma_j^2),

with ``s`` the fan-in scaled prior standard deviations of
:func:`~bayes.models.bnn.mlp.prior_scales`. Three ways to approximate
``p(w | data)``, each returning :class:`WeightDraws`:

- :func:`sample_nuts`: NUTS through :func:`bayes.sample` on the log-density
  (data traced, so a new round with the same padded size does not compile
  again), chains started from MAP fits or from the previous round's draws;
- :func:`fit_meanfield`: mean-field Gaussian VI with the reparameterized ELBO
  of :mod:`bayes.inference.vi`, started at a MAP fit;
- :func:`train_ensemble`: MAP networks on bootstrap reweightings (deep
  ensembles), all members trained at once under ``vmap``.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .data import PaddedData
from .mlp import MLPConfig, apply, init_params, prior_logdensity, prior_scales

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BNNPrior",
    "WeightDraws",
    "fit_meanfield",
    "last_draws",
    "logdensity_fn",
    "predict",
    "sample_nuts",
    "train_ensemble",
]


class BNNPrior(NamedTuple):
    """Prior settings (hashable).

    Attributes:
        weight_scale: ``sigma_w``: weights have standard deviation ``sigma_w / sqrt(fan_in)``.
        input_scale: ``sigma_w`` of the first layer (inputs are expected in ``[-1, 1]^d``).
        bias_scale: ``sigma_b``: standard deviation of the biases.
        log_noise_loc: Prior mean of ``log sigma`` (standardized outputs).
        log_noise_scale: Prior standard deviation of ``log sigma``.
    """

    weight_scale: float = 1.0
    input_scale: float = 3.0
    bias_scale: float = 1.0
    log_noise_loc: float = math.log(0.05)
    log_noise_scale: float = 1.0


DEFAULT_PRIOR = BNNPrior()


class WeightDraws(NamedTuple):
    """An ensemble of networks: posterior draws or trained members.

    Attributes:
        w: Flat weights, shape ``(S, num_params)``.
        log_noise: Log noise standard deviations, shape ``(S, m)``.
    """

    w: jax.Array
    log_noise: jax.Array


@functools.cache
def logdensity_fn(
    config: MLPConfig, prior: BNNPrior = DEFAULT_PRIOR
) -> Callable[[dict[str, jax.Array], jax.Array, jax.Array, jax.Array], jax.Array]:
    """The joint log-density ``log p(w, log sigma, y | x)`` as ``fn(position, x, y, mask)``.

    Cached per ``(config, prior)``, so the same function object (and hence
    the same compiled sampler) serves every round of a BO loop.

    Returns:
        ``logdensity(position, x, y, mask) -> scalar`` with ``position``
            ``{"w": (num_params,), "log_noise": (m,)}`` and data as in :class:`PaddedData`.
    """
    # NumPy, not jnp: a cached closure must not capture a value made under a trace.
    scales = prior_scales(config, weight_scale=prior.weight_scale, bias_scale=prior.bias_scale,
                          input_scale=prior.input_scale)  # fmt: skip

    def logdensity(position, x, y, mask):
        w, log_noise = position["w"], position["log_noise"]
        lp = prior_logdensity(w, scales)
        z = (log_noise - prior.log_noise_loc) / prior.log_noise_scale
        lp = lp - 0.5 * jnp.sum(z**2)
        resid = (y - apply(config, w, x)) * jnp.exp(-log_noise)
        loglik = -0.5 * resid**2 - log_noise - 0.5 * math.log(2 * math.pi)
        return lp + jnp.sum(mask[:, None] * loglik)

    logdensity.__qualname__ = f"bnn_logdensity[{config}]"
    return logdensity


def predict(config: MLPConfig, draws: WeightDraws, x: jax.Array) -> jax.Array:
    """Network outputs of every draw, shape ``(S, n, m)`` for ``x`` of shape ``(n, d)``."""
    return jax.vmap(lambda w: apply(config, w, x))(draws.w)


@functools.partial(jax.jit, static_argnames=("config", "prior", "num_steps"))
def _map_fit(config, prior, data, weights, w0, learning_rate, num_steps):
    """MAP fits of ``len(w0)`` networks with row weights ``weights`` (members x n_pad)."""
    logdensity = logdensity_fn(config, prior)
    m = data.y.shape[1]

    def one(w_init, row_weights):
        position = {"w": w_init, "log_noise": jnp.full((m,), prior.log_noise_loc)}
        opt = optax.adam(learning_rate)

        def loss(p):
            return -logdensity(p, data.x, data.y, row_weights)

        def step(carry, _):
            p, state = carry
            grads = jax.grad(loss)(p)
            updates, state = opt.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), None

        (position, _), _ = jax.lax.scan(step, (position, opt.init(position)), None, num_steps)
        return position

    out = jax.vmap(one)(w0, weights)
    return WeightDraws(out["w"], out["log_noise"])


def train_ensemble(
    config: MLPConfig,
    data: PaddedData,
    *,
    rng_key: jax.Array,
    num_members: int = 8,
    num_steps: int = 1000,
    learning_rate: float = 0.01,
    bootstrap: bool = True,
    prior: BNNPrior = DEFAULT_PRIOR,
) -> WeightDraws:
    """Deep ensemble: MAP networks from independent prior draws, on bootstrap reweightings.

    Each member maximizes the log-density with row ``i`` weighted by its
    bootstrap count (``n_pad`` draws with replacement among the real rows,
    rescaled to ``n`` in total), so members differ in both initialization
    and data. All members train together in one compiled ``vmap``/``scan``.

    Returns:
        The draws, as :class:`WeightDraws` with ``S = num_members``.
    """
    key_init, key_boot = jax.random.split(rng_key)
    keys = jax.random.split(key_init, num_members)
    w0 = jax.vmap(lambda k: init_params(config, rng_key=k, weight_scale=prior.weight_scale,
                                        bias_scale=prior.bias_scale,
                                        input_scale=prior.input_scale))(keys)  # fmt: skip
    n_pad = data.mask.shape[0]
    if bootstrap:
        p = data.mask / data.mask.sum()
        idx = jax.random.choice(key_boot, n_pad, (num_members, n_pad), p=p)
        counts = jax.vmap(lambda i: jnp.bincount(i, length=n_pad))(idx)
        weights = counts * (data.mask.sum() / n_pad)
    else:
        weights = jnp.broadcast_to(data.mask, (num_members, n_pad))
    return _map_fit(config, prior, data, weights, w0, learning_rate, num_steps)


def sample_nuts(
    config: MLPConfig,
    data: PaddedData,
    *,
    seed: int = 0,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 100,
    thinning: int = 4,
    max_tree_depth: int = 8,
    init: WeightDraws | None = None,
    map_steps: int = 1000,
    initial_step_size: float = 1e-3,
    prior: BNNPrior = DEFAULT_PRIOR,
) -> WeightDraws:
    """Posterior draws of the network weights with NUTS (:func:`bayes.sample`).

    Chains start at ``init`` (one draw per chain, e.g. the previous round's
    last draws: a warm start) or else at MAP fits from prior draws, which
    puts every chain in a region of high posterior density before warmup.

    Args:
        config: Architecture.
        data: Padded, standardized training data.
        seed: Seed of the run.
        num_chains: Chains (vectorized).
        num_warmup: Window-adaptation steps per chain.
        num_samples: Draws per chain before thinning.
        thinning: Keep every ``thinning``-th draw.
        max_tree_depth: NUTS maximum tree depth.
        init: Starting points, leaves with leading size ``num_chains``.
        map_steps: Adam steps of the MAP initialization (cold starts only).
        initial_step_size: First step size of warmup; small, so that early
            warmup does not throw chains out of the mode they start in.
        prior: Prior settings.

    Returns:
        The draws, as :class:`WeightDraws` with ``S = num_chains * ceil(num_samples / thinning)``.
    """
    import bayes

    if init is None:
        init = train_ensemble(
            config, data, rng_key=jax.random.key(seed), num_members=num_chains,
            num_steps=map_steps, bootstrap=False, prior=prior,
        )  # fmt: skip
    starts = {"w": init.w[:num_chains], "log_noise": init.log_noise[:num_chains]}
    idata = bayes.sample(
        logdensity_fn(config, prior),
        {"x": data.x, "y": data.y, "mask": data.mask},
        initial_positions=starts,
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_samples=num_samples,
        seed=seed,
        progress=False,
        max_tree_depth=max_tree_depth,
        initial_step_size=initial_step_size,
        chunk_size=100,  # fixed: it is part of the compiled program, warm rounds reuse it
    )
    post = idata.posterior
    w = np.asarray(post["w"].values)[:, ::thinning]
    log_noise = np.asarray(post["log_noise"].values)[:, ::thinning]
    return WeightDraws(
        jnp.asarray(w.reshape(-1, w.shape[-1])),
        jnp.asarray(log_noise.reshape(-1, log_noise.shape[-1])),
    )


def last_draws(draws: WeightDraws, num_chains: int) -> WeightDraws:
    """The last draw of each chain (draws ordered chain-major), for a warm start."""
    per_chain = draws.w.shape[0] // num_chains
    idx = jnp.arange(1, num_chains + 1) * per_chain - 1
    return WeightDraws(draws.w[idx], draws.log_noise[idx])


@functools.cache
def _numpyro_model(config: MLPConfig, prior: BNNPrior, kl_weight: float):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.handlers import scale

    # NumPy, not jnp: a cached closure must not capture a value made under a trace.
    scales = prior_scales(config, weight_scale=prior.weight_scale, bias_scale=prior.bias_scale,
                          input_scale=prior.input_scale)  # fmt: skip

    def model(x, y, mask):
        with scale(scale=kl_weight):
            w = numpyro.sample("w", dist.Normal(0.0, scales).to_event(1))
            log_noise = numpyro.sample(
                "log_noise",
                dist.Normal(prior.log_noise_loc, prior.log_noise_scale)
                .expand([config.out_dim])
                .to_event(1),
            )
        resid = (y - apply(config, w, x)) * jnp.exp(-log_noise)
        loglik = -0.5 * resid**2 - log_noise - 0.5 * math.log(2 * math.pi)
        numpyro.factor("loglik", jnp.sum(mask[:, None] * loglik))

    return model


@functools.partial(
    jax.jit,
    static_argnames=("config", "prior", "num_steps", "num_draws", "num_particles", "init_scale",
                     "kl_weight"),
)  # fmt: skip
def _meanfield(config, prior, data, w_map, log_noise_map, rng_key, learning_rate, init_scale,
               num_steps, num_draws, num_particles, kl_weight):  # fmt: skip
    from bayes.inference.vi import build, elbo, make_guide, run_steps
    from numpyro.handlers import scale
    from numpyro.infer import Predictive

    model = _numpyro_model(config, prior, kl_weight)
    base = make_guide(model, "meanfield", init_scale=init_scale,
                      init_loc={"w": w_map, "log_noise": log_noise_map})  # fmt: skip
    # Scaling both the prior sites and the guide by beta gives E_q[log lik] - beta KL(q || p).
    guide = scale(base, scale=kl_weight)

    def objective(model, guide, params, *args, rng_key, **kwargs):
        keys = jax.random.split(rng_key, num_particles)
        values = jax.vmap(lambda k: elbo(model, guide, params, *args, rng_key=k, **kwargs))(keys)
        return values.mean()

    k_build, k_init, k_run, k_draw = jax.random.split(rng_key, 4)
    algo = build(objective, model, guide, optax.adam(learning_rate), data.x, data.y, data.mask,
                 rng_key=k_build)  # fmt: skip
    state = algo.init(rng_key=k_init)
    state, info = run_steps(algo.step, state, k_run, num_steps)
    params = algo.constrain(state.params)
    draws = Predictive(guide, params=params, num_samples=num_draws)(
        k_draw, data.x, data.y, data.mask
    )
    return WeightDraws(draws["w"], draws["log_noise"]), info.objective


def fit_meanfield(
    config: MLPConfig,
    data: PaddedData,
    *,
    rng_key: jax.Array,
    num_draws: int = 64,
    num_steps: int = 2000,
    learning_rate: float = 0.01,
    init_scale: float = 1e-3,
    num_particles: int = 4,
    map_steps: int = 1000,
    kl_weight: float = 1.0,
    prior: BNNPrior = DEFAULT_PRIOR,
) -> tuple[WeightDraws, jax.Array]:
    """Mean-field Gaussian VI (reparameterized ELBO), started at a MAP fit.

    With ``kl_weight = beta < 1`` the objective is the tempered ELBO
    ``E_q[log p(y | w)] - beta KL(q || p)``: mean-field VI of a network with
    thousands of weights on tens of points otherwise tends to collapse to
    the prior (over-pruning), which the full KL rewards.

    Returns:
        ``(draws, objective)``: ``num_draws`` draws from the fitted guide and
            the ELBO estimate at every step, shape ``(num_steps,)``.
    """
    key_map, key_vi = jax.random.split(rng_key)
    start = train_ensemble(config, data, rng_key=key_map, num_members=1, num_steps=map_steps,
                           bootstrap=False, prior=prior)  # fmt: skip
    return _meanfield(config, prior, data, start.w[0], start.log_noise[0], key_vi,
                      learning_rate, init_scale, num_steps, num_draws, num_particles,
                      float(kl_weight))  # fmt: skip
