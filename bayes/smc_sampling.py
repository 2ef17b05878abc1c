"""Tempered SMC for static models: the ``method="smc"`` back end of :func:`bayes.sample`.

Adaptive tempering (Jasra et al. 2011) moves particles from the prior to the
posterior through :math:`\\pi_\\lambda(z) \\propto p(z)\\, L(z)^\\lambda`,
choosing each next :math:`\\lambda` so that the effective sample size of the
incremental weights equals ``target_ess * num_particles``; after resampling,
particles are moved by ``num_mcmc_steps`` HMC or random-walk Metropolis steps
(BlackJAX's tempered-SMC kernel). The product of the mean incremental weights
estimates the evidence :math:`p(y) = \\int p(z) L(z)\\,dz`.

Everything lives in the unconstrained space of the model (see
:mod:`bayes.target`); the likelihood :math:`\\log L(z)` is the sum of the
observed sites' log-densities at the constrained point and the prior is the
rest of the joint log-density (Jacobians included), so the two compose with
:class:`~bayes.target.Target`. A plain JAX log-density
``logdensity_fn(position, **data)`` (the unnormalised posterior) is tempered
the same way once the prior is given as the options ``prior_logdensity_fn``
(normalised, so that the evidence is :math:`\\int e^{\\text{logdensity\\_fn}}`)
and ``prior_sample_fn``; the likelihood is their difference.

Mutation kernels are re-tuned between steps from the particles: a diagonal
mass matrix (HMC) or proposal scale (random walk) from the particles'
variances, and a step-size multiplier nudged towards an acceptance rate of
about 0.65 (HMC) or 0.3 (random walk).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["sample_smc", "split_logdensity", "tempered_smc"]


def split_logdensity(
    target: Any, prior_logdensity_fn: Callable | None = None
) -> tuple[Callable, Callable]:
    """``(logprior_fn, loglikelihood_fn)`` over unconstrained positions of a target.

    For a NumPyro target ``loglikelihood_fn(z)`` sums the observed sites'
    log-densities at the constrained point and
    ``logprior_fn(z) = target.logdensity_fn(z) - loglikelihood_fn(z)``. For a
    log-density target ``logprior_fn = prior_logdensity_fn`` (required) and
    ``loglikelihood_fn(z) = target.logdensity_fn(z) - prior_logdensity_fn(z)``.
    """
    import jax
    import jax.numpy as jnp

    if target.spec.kind == "logdensity":
        if prior_logdensity_fn is None:
            raise ValueError(
                "tempered SMC on a log-density needs prior_logdensity_fn=... (the log prior "
                "of a position, normalised) to split it into prior and likelihood"
            )

        def loglikelihood(z):
            return target.logdensity_fn(z) - prior_logdensity_fn(z)

        return prior_logdensity_fn, loglikelihood
    if not target.observed_names:
        raise ValueError(
            "tempered SMC needs a NumPyro model with observed sites (it splits the "
            "log-density into prior and likelihood)"
        )

    def loglikelihood_fn(z):
        terms = target.log_likelihood_fn(z)
        return sum(jnp.sum(v) for v in jax.tree.leaves(terms))

    def logprior_fn(z):
        return target.logdensity_fn(z) - loglikelihood_fn(z)

    return logprior_fn, loglikelihood_fn


def _prior_positions(
    target: Any, rng_key: Any, num_particles: int, prior_sample_fn: Callable | None = None
) -> Any:
    import jax

    if target.spec.kind == "logdensity":
        return jax.vmap(prior_sample_fn)(jax.random.split(rng_key, num_particles))
    from numpyro.infer import Predictive
    from numpyro.infer.util import unconstrain_fn

    names = list(target.example_position)
    kwargs = target.spec.kwargs(target.data)
    draws = Predictive(target.spec.fn, num_samples=num_particles, return_sites=names)(
        rng_key, **kwargs
    )
    return jax.vmap(lambda p: unconstrain_fn(target.spec.fn, (), kwargs, p))(draws)


def tempered_smc(
    logprior_fn: Callable,
    loglikelihood_fn: Callable,
    initial_particles: Any,
    *,
    rng_key: Any,
    kernel: str = "hmc",
    target_ess: float = 0.5,
    num_mcmc_steps: int = 10,
    num_integration_steps: int = 8,
    max_steps: int = 500,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Adaptive tempered SMC from prior draws to the posterior, for several independent runs.

    Args:
        logprior_fn: Log prior density over unconstrained positions.
        loglikelihood_fn: Log-likelihood over unconstrained positions.
        initial_particles: Prior draws, pytree with leading axes
            ``(num_chains, num_particles)``; each chain is an independent run.
        rng_key: PRNG key.
        kernel: ``"hmc"`` or ``"rw"`` mutations.
        target_ess: Fraction of ``num_particles`` kept as ESS between temperatures.
        num_mcmc_steps: Mutation steps per temperature.
        num_integration_steps: Leapfrog steps per HMC mutation.
        max_steps: Stop with an error after this many temperatures.
        progress: Show a progress bar of the temperature.

    Returns:
        One dict per chain with ``particles`` (equally weighted, after a final
            resampling), ``log_evidence``, ``temperatures`` and
            ``acceptance_rates`` per step.
    """
    import blackjax
    import jax
    import jax.flatten_util
    import jax.numpy as jnp
    from blackjax.mcmc import random_walk
    from blackjax.smc import adaptive_tempered, resampling

    if kernel not in ("hmc", "rw"):
        raise ValueError(f"kernel must be 'hmc' or 'rw', got {kernel!r}")
    if not 0.0 < target_ess < 1.0:
        raise ValueError(f"target_ess must be in (0, 1), got {target_ess}")
    num_runs = jax.tree.leaves(initial_particles)[0].shape[0]
    flat, _ = jax.flatten_util.ravel_pytree(jax.tree.map(lambda x: x[0, 0], initial_particles))
    dim = flat.shape[0]

    if kernel == "hmc":
        step_fn = blackjax.hmc.build_kernel()
        init_fn = blackjax.hmc.init
        target_accept, base_scale = 0.65, dim**-0.25
    else:
        rw_step = random_walk.build_additive_step()

        def step_fn(rng_key, state, logdensity_fn, scale):
            return rw_step(rng_key, state, logdensity_fn, random_walk.normal(scale))

        init_fn = random_walk.init
        target_accept, base_scale = 0.3, 2.38 / jnp.sqrt(dim)

    smc_kernel = adaptive_tempered.build_kernel(
        logprior_fn,
        loglikelihood_fn,
        step_fn,
        init_fn,
        resampling.systematic,
        target_ess,
    )

    def params_for(particles, multiplier):
        flat_particles = jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(particles)
        var = jnp.var(flat_particles, axis=0) + 1e-12
        if kernel == "hmc":
            return {
                "step_size": (multiplier * base_scale)[None],
                "inverse_mass_matrix": var[None],
                "num_integration_steps": jnp.array([num_integration_steps]),
            }
        return {"scale": (multiplier * base_scale * jnp.sqrt(var))[None]}

    @jax.jit
    def one_step(key, state, multiplier):
        new, info = smc_kernel(key, state, num_mcmc_steps, params_for(state.particles, multiplier))
        return new, info.log_likelihood_increment, jnp.mean(info.update_info.acceptance_rate)

    # Chains share one compiled step (same shapes): they run one after another.
    return [
        _run(one_step, jax.tree.map(lambda x, c=c: x[c], initial_particles), key, target_accept,
             max_steps, progress)
        for c, key in enumerate(jax.random.split(rng_key, num_runs))
    ]  # fmt: skip


def _run(one_step, initial_particles, rng_key, target_accept, max_steps, progress):
    import jax
    import jax.numpy as jnp
    from blackjax.smc import adaptive_tempered, resampling

    from bayes._progress import progress_bar

    state = adaptive_tempered.init(initial_particles)
    # A typed temperature (init gives a Python float) lets every step reuse one compilation.
    state = state._replace(tempering_param=jnp.asarray(0.0, dtype=state.weights.dtype))
    multiplier = jnp.asarray(1.0, dtype=state.weights.dtype)
    log_evidence = 0.0
    temperatures, accepts = [], []
    with progress_bar(total=None, desc="tempered SMC", enabled=progress) as bar:
        while float(state.tempering_param) < 1.0:
            if len(temperatures) >= max_steps:
                raise RuntimeError(f"tempered SMC did not reach temperature 1 in {max_steps} steps")
            rng_key, key = jax.random.split(rng_key)
            state, increment, accept = one_step(key, state, multiplier)
            log_evidence += float(increment)
            temperatures.append(float(state.tempering_param))
            accepts.append(float(accept))
            # Step-size multiplier nudged towards the target acceptance rate (tuning
            # lives outside the compiled state).
            multiplier = multiplier * jnp.exp(accept - target_accept)
            bar.update(1)
            bar.set_postfix(temperature=f"{temperatures[-1]:.3f}")
    rng_key, key = jax.random.split(rng_key)
    n = state.weights.shape[0]
    idx = resampling.systematic(key, state.weights, n)
    particles = jax.tree.map(lambda x: x[idx], state.particles)
    return {
        "particles": particles,
        "log_evidence": log_evidence,
        "temperatures": temperatures,
        "acceptance_rates": accepts,
    }


def _target(
    model: Callable,
    data: Mapping[str, Any] | None,
    initial_position: Any,
    prior_logdensity_fn: Callable | None,
    prior_sample_fn: Callable | None,
) -> Any:
    """The NumPyro or log-density target; a log-density needs both prior functions."""
    import jax

    from bayes.target import as_target

    given = [prior_logdensity_fn is not None, prior_sample_fn is not None]
    if initial_position is None and not any(given):
        return as_target(model, data)
    if not all(given):
        raise ValueError(
            "tempered SMC on a log-density needs the options prior_logdensity_fn(position) "
            "-> scalar (normalised log prior) and prior_sample_fn(rng_key) -> position "
            "(one prior draw): it starts from prior draws and tempers the likelihood "
            "logdensity_fn - prior_logdensity_fn"
        )
    draw = jax.eval_shape(prior_sample_fn, jax.random.key(0))
    if initial_position is None:
        initial_position = jax.tree.map(lambda x: jax.numpy.zeros(x.shape, x.dtype), draw)
    expected = jax.eval_shape(lambda: initial_position)
    if jax.tree.structure(draw) != jax.tree.structure(expected) or [
        x.shape for x in jax.tree.leaves(draw)
    ] != [x.shape for x in jax.tree.leaves(expected)]:
        raise ValueError(
            "prior_sample_fn(rng_key) must return one position shaped like "
            f"initial_position; got {draw} for {expected}"
        )
    return as_target(model, data, initial_position=initial_position)


def sample_smc(
    model: Callable,
    data: Mapping[str, Any] | None = None,
    *,
    num_chains: int = 4,
    num_warmup: int = 0,
    num_samples: int = 1000,
    seed: int = 0,
    progress: bool = True,
    num_particles: int | None = None,
    kernel: str = "hmc",
    target_ess: float = 0.5,
    num_mcmc_steps: int = 10,
    num_integration_steps: int = 8,
    **options: Any,
) -> Any:
    """Adaptive tempered SMC on a NumPyro model, returned as ``InferenceData``.

    Called by ``bayes.sample(model, data, method="smc", ...)``. Each chain is
    an independent SMC run with ``num_particles`` particles; its posterior
    draws are ``num_samples`` of its final particles (systematic resampling).

    A JAX log-density ``logdensity_fn(position, **data)`` (the unnormalised
    posterior over a pytree of unconstrained parameters) needs the options
    ``prior_logdensity_fn(position) -> scalar`` (a normalised prior, so that
    the evidence estimates :math:`\\int e^{\\text{logdensity\\_fn}}`) and
    ``prior_sample_fn(rng_key) -> position`` (one prior draw, a pytree like
    ``initial_position``); ``initial_position`` is optional (it only fixes the
    layout, checked against the prior draws).

    Args:
        model: A NumPyro model with observed sites, or a JAX log-density.
        data: Keyword arguments of the model.
        num_chains: Independent SMC runs.
        num_warmup: Unused (SMC has no warmup); accepted for a uniform API.
        num_samples: Draws kept per chain (``<= num_particles``).
        seed: Seed.
        progress: Progress bar per run.
        num_particles: Particles per run (default ``max(num_samples, 1000)``).
        kernel: ``"hmc"`` (default) or ``"rw"`` mutations.
        target_ess: ESS fraction kept between temperatures.
        num_mcmc_steps: Mutation steps per temperature.
        num_integration_steps: Leapfrog steps per HMC mutation.
        **options: For a log-density: ``prior_logdensity_fn``,
            ``prior_sample_fn`` and optionally ``initial_position``.

    Returns:
        ``InferenceData`` with ``posterior`` ``(num_chains, num_samples, ...)``,
            ``log_likelihood`` and ``observed_data`` (NumPyro models); ``attrs`` hold
            ``log_evidence`` (mean over chains of the log evidence estimates),
            ``log_evidence_per_chain``, ``num_tempering_steps`` and timings.

    Raises:
        ValueError: Unknown options, bad sizes, a model without observations, or
            a log-density without its prior functions.
    """
    import jax
    import numpy as np

    from bayes.convert import run_attrs, to_inference_data

    prior_logdensity_fn = options.pop("prior_logdensity_fn", None)
    prior_sample_fn = options.pop("prior_sample_fn", None)
    initial_position = options.pop("initial_position", None)
    if "initial_positions" in options:
        raise ValueError(
            "initial_positions is not used by method 'smc' (it starts from prior draws); "
            "give prior_sample_fn and, optionally, initial_position"
        )
    if options:
        raise ValueError(f"unknown option(s) for method 'smc': {', '.join(sorted(options))}")
    num_particles = num_particles if num_particles is not None else max(num_samples, 1000)
    if not isinstance(num_particles, int) or num_particles < 2:
        raise ValueError(f"num_particles must be an integer >= 2, got {num_particles!r}")
    if num_samples > num_particles:
        raise ValueError(
            f"num_samples ({num_samples}) cannot exceed num_particles ({num_particles})"
        )
    target = _target(model, data, initial_position, prior_logdensity_fn, prior_sample_fn)
    logprior_fn, loglikelihood_fn = split_logdensity(target, prior_logdensity_fn)
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    k_prior, k_run = jax.random.split(key)
    particles = _prior_positions(target, k_prior, num_chains * num_particles, prior_sample_fn)
    particles = jax.tree.map(
        lambda x: x.reshape((num_chains, num_particles, *x.shape[1:])), particles
    )
    runs = tempered_smc(
        logprior_fn,
        loglikelihood_fn,
        particles,
        rng_key=k_run,
        kernel=kernel,
        target_ess=target_ess,
        num_mcmc_steps=num_mcmc_steps,
        num_integration_steps=num_integration_steps,
        progress=progress,
    )
    elapsed = time.perf_counter() - t0
    positions = jax.tree.map(
        lambda *xs: np.stack([np.asarray(x)[:num_samples] for x in xs]),
        *[r["particles"] for r in runs],
    )
    constrained, log_lik = target.postprocess(positions)
    log_evidence = [r["log_evidence"] for r in runs]
    settings = {
        "num_particles": num_particles,
        "kernel": kernel,
        "target_ess": target_ess,
        "num_mcmc_steps": num_mcmc_steps,
        "num_integration_steps": num_integration_steps,
    }
    attrs = run_attrs(
        "smc",
        settings,
        log_evidence=float(np.mean(log_evidence)),
        log_evidence_per_chain=log_evidence,
        num_tempering_steps=[len(r["temperatures"]) for r in runs],
        sampling_s=elapsed,
    )
    return to_inference_data(
        constrained,
        log_likelihood=log_lik,
        observed_data=target.observed_data,
        attrs=attrs,
    )
