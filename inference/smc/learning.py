"""Learning with PaRIS and PPG: scores, maximum likelihood, Markov score climbing.

**Score by Fisher's identity.** :math:`\\nabla_\\theta \\log p_\\theta(y_{0:T-1})
= \\mathbb E_\\theta[\\sum_t \\tilde h_t(X_{t-1}, X_t) \\mid y]` with the additive
terms :math:`\\tilde h_0 = \\nabla_\\theta[\\log m_\\theta(x_0) + \\log g_\\theta(x_0, y_0)]`
and :math:`\\tilde h_t = \\nabla_\\theta[\\log q_\\theta(x_{t-1}, x_t) + \\log
g_\\theta(x_t, y_t)]`, estimated by PaRIS or by a PPG sweep (:func:`estimate_score`).

**Maximum likelihood by stochastic approximation** (:func:`fit_mle`): an optax
optimizer ascends the estimated score (divided by ``T``). With
``method="ppg"`` the conditioning path is carried across parameter updates,
so each iteration costs one conditional sweep (Cardoso et al. 2023, Sec. 4).

**Markov score climbing** (Naesseth, Lindsten & Blei 2020; :func:`fit_msc`):
a Markov variational family :math:`q_\\lambda(x_{0:T-1}) = q_{\\lambda,0}(x_0)
\\prod_t q_{\\lambda,t}(x_{t-1}, x_t)` is fitted by ascending
:math:`\\mathbb E_{\\text{posterior}}[\\nabla_\\lambda \\log q_\\lambda(X)]`, an
additive functional estimated by a PPG sweep whose conditioning path is
carried across updates (the Markov kernel of MSC). This minimises the
inclusive divergence :math:`\\mathrm{KL}(p \\,\\|\\, q_\\lambda)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from bayes.inference.smc.csmc import csmc_sweep
from bayes.inference.smc.paris import run_paris, validate
from bayes.inference.smc.ssm import StateSpaceModel, check_observations, check_positive
from jax import Array

__all__ = [
    "FitResult",
    "MarkovFamily",
    "estimate_score",
    "fit_mle",
    "fit_msc",
    "gaussian_markov_family",
    "gaussian_markov_marginals",
    "score_functional",
]


class FitResult(NamedTuple):
    """``params`` after the last iteration and their ``trace`` (pytree with a
    leading ``num_iterations`` axis)."""

    params: Any
    trace: Any


class MarkovFamily(NamedTuple):
    """A Markov variational family over paths.

    Attributes:
        initial_logdensity: ``(x0, lam) -> log q_{lam,0}(x0)``.
        transition_logdensity: ``(x_prev, x, t, lam) -> log q_{lam,t}(x_prev, x)``.
    """

    initial_logdensity: Callable[[Array, Any], Array]
    transition_logdensity: Callable[[Array, Array, Array, Any], Array]


def score_functional(
    model: StateSpaceModel, theta: Any, observations: Array
) -> tuple[Callable, Callable]:
    """``(additive_fn, initial_fn)`` of the Fisher-identity score at ``theta``."""

    def initial_fn(x0):
        return jax.grad(
            lambda th: (
                model.initial_logdensity(x0, th)
                + model.observation_logdensity(x0, observations[0], 0, th)
            )
        )(theta)

    def additive_fn(xp, x, t):
        return jax.grad(
            lambda th: (
                model.transition_logdensity(xp, x, t, th)
                + model.observation_logdensity(x, observations[t], t, th)
            )
        )(theta)

    return additive_fn, initial_fn


def estimate_score(
    model: StateSpaceModel,
    theta: Any,
    observations: Array,
    *,
    rng_key: Array,
    num_particles: int,
    num_backward: int = 2,
    path: Array | None = None,
    backward: str = "exact",
    num_mcmc_steps: int = 1,
    max_trials: int = 16,
) -> tuple[Any, Array]:
    """Estimate :math:`\\nabla_\\theta \\log p_\\theta(y)` by PaRIS, or by one PPG sweep.

    Args:
        path: Conditioning path ``(T, *state_shape)`` for a PPG sweep; ``None``
            runs PaRIS.
        backward: Backward draws, ``"exact"``, ``"rejection"`` or ``"mcmc"``
            (see :mod:`~bayes.inference.smc.backward`).
        num_mcmc_steps: MH steps per draw for ``backward="mcmc"``.
        max_trials: Proposals per draw for ``backward="rejection"``.

    Returns:
        ``(score, log_likelihood)``; ``score`` is shaped like ``theta``.
    """
    options = _backward_options(
        num_particles, num_backward, backward, num_mcmc_steps, max_trials, model
    )
    additive_fn, initial_fn = score_functional(model, theta, observations)
    if path is None:
        out = run_paris(
            model,
            theta,
            observations,
            additive_fn,
            rng_key=rng_key,
            num_particles=num_particles,
            initial_fn=initial_fn,
            **options,
        )
        return out.estimate, out.log_likelihood
    out = csmc_sweep(
        rng_key,
        model,
        theta,
        observations,
        path,
        additive_fn,
        num_particles=num_particles,
        initial_fn=initial_fn,
        **options,
    )
    return out.estimate, out.log_likelihood


def _backward_options(
    num_particles: int,
    num_backward: int,
    backward: str,
    num_mcmc_steps: int,
    max_trials: int,
    model: StateSpaceModel,
) -> dict[str, Any]:
    """Validated keyword arguments of the backward draws for run_paris / csmc_sweep."""
    validate(num_particles, num_backward, backward, model)
    check_positive("num_mcmc_steps", num_mcmc_steps, 1)
    check_positive("max_trials", max_trials, 1)
    return {
        "num_backward": num_backward,
        "backward": backward,
        "num_mcmc_steps": num_mcmc_steps,
        "max_trials": max_trials,
    }


def _initial_path(rng_key, model, theta, ys, additive_fn, initial_fn, n, options):
    dummy = jnp.zeros((ys.shape[0], *jnp.shape(model.initial_sampler(rng_key, theta))))
    return csmc_sweep(
        rng_key,
        model,
        theta,
        ys,
        dummy,
        additive_fn,
        num_particles=n,
        conditional=False,
        initial_fn=initial_fn,
        **options,
    ).path


def fit_mle(
    model: StateSpaceModel,
    initial_theta: Any,
    observations: Array,
    *,
    rng_key: Array,
    num_iterations: int,
    optimizer: Any = None,
    method: str = "ppg",
    num_particles: int = 32,
    num_backward: int = 2,
    backward: str = "exact",
    num_mcmc_steps: int = 1,
    max_trials: int = 16,
) -> FitResult:
    """Maximum likelihood by stochastic approximation with PaRIS or PPG scores.

    Args:
        model: The state-space model (``theta`` unconstrained).
        initial_theta: Starting parameters (pytree).
        observations: Shape ``(T, *obs_shape)``.
        rng_key: PRNG key.
        num_iterations: Parameter updates.
        optimizer: An ``optax.GradientTransformation``; default ``optax.adam(0.02)``.
        method: ``"ppg"`` (path carried across updates) or ``"paris"``.
        num_particles: ``N >= 2``.
        num_backward: ``K >= 1``.
        backward: Backward draws, ``"exact"`` (:math:`O(N^2)` per step),
            ``"rejection"`` or ``"mcmc"`` (:math:`O(N)`).
        num_mcmc_steps: MH steps per draw for ``backward="mcmc"``.
        max_trials: Proposals per draw for ``backward="rejection"``.

    Returns:
        The fit, as a :class:`FitResult` with the parameter trace.
    """
    import optax

    options = _backward_options(
        num_particles, num_backward, backward, num_mcmc_steps, max_trials, model
    )
    check_positive("num_iterations", num_iterations, 1)
    if method not in ("ppg", "paris"):
        raise ValueError(f"method must be 'ppg' or 'paris', got {method!r}")
    ys = check_observations(observations, min_length=2)
    opt = optimizer if optimizer is not None else optax.adam(0.02)
    scale = 1.0 / ys.shape[0]
    k_init, k_iter = jax.random.split(rng_key)
    add0, init0 = score_functional(model, initial_theta, ys)
    path0 = _initial_path(k_init, model, initial_theta, ys, add0, init0, num_particles, options)

    def body(carry, key):
        theta, opt_state, path = carry
        additive_fn, initial_fn = score_functional(model, theta, ys)
        if method == "ppg":
            out = csmc_sweep(
                key,
                model,
                theta,
                ys,
                path,
                additive_fn,
                num_particles=num_particles,
                initial_fn=initial_fn,
                **options,
            )
            score, path = out.estimate, out.path
        else:
            score = run_paris(
                model,
                theta,
                ys,
                additive_fn,
                rng_key=key,
                num_particles=num_particles,
                initial_fn=initial_fn,
                **options,
            ).estimate
        ascent = jax.tree.map(lambda g: -scale * g, score)
        updates, opt_state = opt.update(ascent, opt_state, theta)
        theta = optax.apply_updates(theta, updates)
        return (theta, opt_state, path), theta

    carry = (initial_theta, opt.init(initial_theta), path0)
    (theta, _, _), trace = jax.lax.scan(body, carry, jax.random.split(k_iter, num_iterations))
    return FitResult(theta, trace)


def fit_msc(
    model: StateSpaceModel,
    theta: Any,
    observations: Array,
    family: MarkovFamily,
    initial_params: Any,
    *,
    rng_key: Array,
    num_iterations: int,
    optimizer: Any = None,
    num_particles: int = 32,
    num_backward: int = 2,
    backward: str = "exact",
    num_mcmc_steps: int = 1,
    max_trials: int = 16,
) -> FitResult:
    """Markov score climbing of a Markov variational family with PPG as the kernel.

    Args:
        model: The state-space model at known ``theta``.
        theta: Model parameters.
        observations: Shape ``(T, *obs_shape)``.
        family: The variational family.
        initial_params: Its starting parameters :math:`\\lambda` (pytree).
        rng_key: PRNG key.
        num_iterations: Updates of :math:`\\lambda`.
        optimizer: ``optax`` transformation; default ``optax.adam(0.05)``.
        num_particles: ``N >= 2``.
        num_backward: ``K >= 1``.
        backward: Backward draws of the PPG sweeps, ``"exact"``, ``"rejection"``
            or ``"mcmc"``.
        num_mcmc_steps: MH steps per draw for ``backward="mcmc"``.
        max_trials: Proposals per draw for ``backward="rejection"``.

    Returns:
        The fit, as a :class:`FitResult` over :math:`\\lambda`.
    """
    import optax

    options = _backward_options(
        num_particles, num_backward, backward, num_mcmc_steps, max_trials, model
    )
    check_positive("num_iterations", num_iterations, 1)
    ys = check_observations(observations, min_length=2)
    opt = optimizer if optimizer is not None else optax.adam(0.05)
    k_init, k_iter = jax.random.split(rng_key)

    def functional(lam):
        def initial_fn(x0):
            return jax.grad(family.initial_logdensity, argnums=1)(x0, lam)

        def additive_fn(xp, x, t):
            return jax.grad(family.transition_logdensity, argnums=3)(xp, x, t, lam)

        return additive_fn, initial_fn

    add0, init0 = functional(initial_params)
    path0 = _initial_path(k_init, model, theta, ys, add0, init0, num_particles, options)

    def body(carry, key):
        lam, opt_state, path = carry
        additive_fn, initial_fn = functional(lam)
        out = csmc_sweep(
            key,
            model,
            theta,
            ys,
            path,
            additive_fn,
            num_particles=num_particles,
            initial_fn=initial_fn,
            **options,
        )
        updates, opt_state = opt.update(jax.tree.map(lambda g: -g, out.estimate), opt_state, lam)
        lam = optax.apply_updates(lam, updates)
        return (lam, opt_state, out.path), lam

    carry = (initial_params, opt.init(initial_params), path0)
    (lam, _, _), trace = jax.lax.scan(body, carry, jax.random.split(k_iter, num_iterations))
    return FitResult(lam, trace)


def gaussian_markov_family(num_steps: int) -> tuple[MarkovFamily, dict[str, Array]]:
    """Gaussian Markov family for scalar-coordinate states of shape ``(1,)``.

    :math:`X_0 \\sim \\mathcal N(\\mu_0, s_0^2)`, :math:`X_t = a_t X_{t-1} + \\mu_t +
    s_t \\varepsilon_t`, with ``lam = {"a": (T,), "mu": (T,), "log_s": (T,)}``.

    Returns:
        ``(family, initial_params)`` with ``a = 0``, ``mu = 0``, ``s = 1``.
    """

    def initial_logdensity(x0, lam):
        return jax.scipy.stats.norm.logpdf(x0[0], lam["mu"][0], jnp.exp(lam["log_s"][0]))

    def transition_logdensity(xp, x, t, lam):
        mean = lam["a"][t] * xp[0] + lam["mu"][t]
        return jax.scipy.stats.norm.logpdf(x[0], mean, jnp.exp(lam["log_s"][t]))

    params = {"a": jnp.zeros(num_steps), "mu": jnp.zeros(num_steps), "log_s": jnp.zeros(num_steps)}
    return MarkovFamily(initial_logdensity, transition_logdensity), params


def gaussian_markov_marginals(lam: dict[str, Array]) -> tuple[Array, Array]:
    """Marginal means and standard deviations ``(T,)`` of :func:`gaussian_markov_family`."""
    var0 = jnp.exp(2 * lam["log_s"][0])

    def body(carry, inputs):
        m, v = carry
        a, mu, log_s = inputs
        m, v = a * m + mu, a**2 * v + jnp.exp(2 * log_s)
        return (m, v), (m, v)

    inputs = (lam["a"][1:], lam["mu"][1:], lam["log_s"][1:])
    _, (ms, vs) = jax.lax.scan(body, (lam["mu"][0], var0), inputs)
    means = jnp.concatenate([lam["mu"][:1], ms])
    return means, jnp.sqrt(jnp.concatenate([var0[None], vs]))
