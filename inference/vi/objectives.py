r"""Variational objectives, each an ordinary program written with the constructs.

Every objective has the signature ``objective(model, guide, params, *args,
rng_key, **kwargs) -> scalar`` and returns one Monte Carlo sample whose
expectation is the objective; :func:`~bayes.inference.vi.surrogate.surrogate`
turns it into a gradient estimator. Functions taking settings (``iwelbo(K)``,
``renyi(alpha, K)``, ...) return such a program. The source of this module is
the best guide to writing new objectives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from numpyro.infer.util import log_density

from .constructs import (
    guide_draw,
    log_mean_exp,
    model_log_density,
    normalized_weights,
    with_gradient_of,
)
from .guides import LATENT_SITE, _constrain_latent, _latent_sites
from .surrogate import StatefulObjective

__all__ = [
    "cis_kernel",
    "elbo",
    "hierarchical_elbo",
    "iwelbo",
    "log_importance_weights",
    "markov_score_climbing",
    "mcmc_kernel",
    "renyi",
    "rws_wake_phi",
]


def log_importance_weights(model, guide, params, *args, rng_key, num_particles, **kwargs):
    r"""``log w_k = log p(x, z_k) - log q(z_k)`` for ``K`` draws ``z_k ~ q``, shape ``(K,)``."""
    draw = guide_draw(guide, params, *args, rng_key=rng_key, num_particles=num_particles, **kwargs)
    return model_log_density(model, draw, params, *args, **kwargs) - draw.log_prob


def elbo(model, guide, params, *args, rng_key, **kwargs) -> jax.Array:
    r"""Evidence lower bound :math:`\mathbb E_q[\log p(x, z) - \log q(z)]` (one draw)."""
    draw = guide_draw(guide, params, *args, rng_key=rng_key, **kwargs)
    return model_log_density(model, draw, params, *args, **kwargs) - draw.log_prob


def iwelbo(num_particles: int) -> Callable[..., jax.Array]:
    r"""Importance-weighted bound (IWAE, Burda et al. 2016) with ``K`` particles.

    :math:`\mathbb E_{z_{1:K} \sim q}\big[\log \frac1K \sum_k p(x, z_k)/q(z_k)\big]`,
    which rises to :math:`\log p(x)` as :math:`K \to \infty`.
    """

    def program(model, guide, params, *args, rng_key, **kwargs):
        log_w = log_importance_weights(
            model, guide, params, *args, rng_key=rng_key, num_particles=num_particles, **kwargs
        )
        return log_mean_exp(log_w)

    return program


def renyi(alpha: float, num_particles: int) -> Callable[..., jax.Array]:
    r"""Rényi-alpha bound (Li & Turner 2016) with ``K`` particles.

    :math:`\frac{1}{1-\alpha}\,\mathbb E\big[\log \frac1K \sum_k w_k^{1-\alpha}\big]`;
    ``alpha = 0`` is the IWELBO and ``alpha -> 1`` the ELBO.
    """
    if alpha == 1.0:
        raise ValueError("alpha = 1 is the ELBO; use objectives.elbo")

    def program(model, guide, params, *args, rng_key, **kwargs):
        log_w = log_importance_weights(
            model, guide, params, *args, rng_key=rng_key, num_particles=num_particles, **kwargs
        )
        return log_mean_exp((1.0 - alpha) * log_w) / (1.0 - alpha)

    return program


def rws_wake_phi(num_particles: int) -> Callable[..., jax.Array]:
    r"""Reweighted wake-sleep wake-phi update (Bornschein & Bengio 2015; Le et al. 2019).

    Minimises the inclusive :math:`KL(p(z|x)\,\|\,q(z))` with the self-normalised
    estimate :math:`\sum_k \bar w_k \nabla \log q(z_k)`, the draws detached. The
    value reported is the IWELBO of the same particles.
    """

    def program(model, guide, params, *args, rng_key, **kwargs):
        draw = guide_draw(
            guide,
            params,
            *args,
            rng_key=rng_key,
            num_particles=num_particles,
            default_estimator="detach",
            **kwargs,
        )
        log_w = model_log_density(model, draw, params, *args, **kwargs) - draw.log_prob
        wake = jnp.sum(normalized_weights(log_w) * draw.log_prob)
        return with_gradient_of(log_mean_exp(log_w), wake)

    return program


def cis_kernel(num_particles: int) -> Callable[..., dict]:
    """Conditional importance sampling kernel (Naesseth et al. 2020) as a default MSC kernel.

    Draws ``K - 1`` proposals from the guide, keeps the current state as the
    ``K``-th, and resamples one in proportion to ``p/q``; the posterior is
    invariant for any guide.

    Returns:
        ``kernel(rng_key, position, model, guide, params, *args, **kwargs) -> position``.
    """

    def kernel(rng_key, position, model, guide, params, *args, **kwargs):
        key_draw, key_pick = jax.random.split(rng_key)
        draw = guide_draw(
            guide,
            params,
            *args,
            rng_key=key_draw,
            num_particles=num_particles - 1,
            default_estimator="detach",
            **kwargs,
        )
        values = jax.tree.map(
            lambda new, old: jnp.concatenate([new, old[None]]),
            {k: draw.values[k] for k in position},
            position,
        )
        log_q = jax.vmap(lambda v: _guide_log_density(guide, v, params, args, kwargs))(values)
        log_p = jax.vmap(lambda v: model_log_density(model, v, params, *args, **kwargs))(values)
        pick = jax.random.categorical(key_pick, jax.lax.stop_gradient(log_p - log_q))
        return jax.tree.map(lambda v: jax.lax.stop_gradient(v[pick]), values)

    return kernel


def mcmc_kernel(
    method: str = "nuts",
    *,
    step_size: float,
    inverse_mass_matrix: jax.Array | None = None,
    num_steps: int = 1,
    **settings: Any,
) -> Callable[..., dict]:
    r"""HMC or NUTS transitions of :mod:`bayes.inference.mcmc` as a Markov score climbing kernel.

    The chain moves in the model's unconstrained latent space, ``u (D,)``, with
    target :math:`\log p(x, T(u)) + \log|\det J_T(u)|` (``T`` maps each site
    onto its support), so it leaves the posterior invariant whatever the step
    size. MSC runs no warmup: the step size and mass matrix stay fixed. The
    guide's sites must be the model's latent sites, plus the latent vector of
    a :func:`~bayes.inference.vi.make_guide` Gaussian guide (which is ``u``).

    Args:
        method: ``"nuts"`` or ``"hmc"`` (see :func:`bayes.inference.mcmc.build_step`).
        step_size: Leapfrog step size.
        inverse_mass_matrix: Diagonal, shape ``(D,)`` (default identity).
        num_steps: Transitions per MSC step.
        **settings: More options of ``build_step`` (``max_tree_depth``,
            ``num_integration_steps``, ...).

    Returns:
        ``kernel(rng_key, position, model, guide, params, *args, **kwargs) -> position``.
    """
    if method not in ("nuts", "hmc"):
        raise ValueError(f"method must be 'nuts' or 'hmc', got {method!r}")
    from bayes.inference.mcmc import ChainState, build_step, window_adaptation
    from blackjax.mcmc.hmc import init as hmc_init

    _, step = build_step(method, **settings)
    tuning_init = window_adaptation()[0]

    def kernel(rng_key, position, model, guide, params, *args, **kwargs):
        sites = _latent_sites(model, args, kwargs)
        foreign = sorted(set(position) - {s.name for s in sites} - {LATENT_SITE})
        if foreign:
            raise ValueError(
                f"guide sites {foreign} are not latent sites of the model: an MCMC kernel "
                "moves only those (use the default conditional importance sampling kernel)"
            )
        # The chain is a constant of the objective; this also keeps reverse-mode
        # differentiation out of NUTS's while loop.
        params = jax.lax.stop_gradient(params)
        if LATENT_SITE in position:
            u = position[LATENT_SITE]
        else:
            u = jnp.concatenate([jnp.reshape(s.transform.inv(position[s.name]), -1) for s in sites])

        def logdensity(u):
            parts = _constrain_latent(sites, u)
            values = {s.name: value for s, (value, _) in zip(sites, parts)}
            log_det = sum(ld for _, ld in parts)
            return model_log_density(model, values, params, *args, **kwargs) + log_det

        tuning = tuning_init(u.shape[0], step_size)
        if inverse_mass_matrix is not None:
            tuning = tuning._replace(inverse_mass_matrix=jnp.asarray(inverse_mass_matrix))

        def transition(state, key):
            # Step index 0 of a run with no warmup: the tuning is used as it is.
            return step(key, state, logdensity, 0, 0, 0, False)[0], None

        state = ChainState(hmc_init(u, logdensity), tuning)
        state, _ = jax.lax.scan(transition, state, jax.random.split(rng_key, num_steps))
        u = state.kernel.position
        new = {s.name: value for s, (value, _) in zip(sites, _constrain_latent(sites, u))}
        if LATENT_SITE in position:
            new[LATENT_SITE] = u
        return jax.lax.stop_gradient(new)

    return kernel


def _guide_log_density(guide, values, params, args, kwargs):
    return log_density(guide, args, kwargs, {**params, **values})[0]


def markov_score_climbing(
    kernel: Callable[..., dict] | None = None, *, num_particles: int = 10
) -> StatefulObjective:
    r"""Markov score climbing (Naesseth, Lindsten & Blei 2020).

    Keeps a Markov chain :math:`z_t` whose kernel leaves the posterior
    invariant and follows :math:`\nabla \log q(z_t)`, which minimises the
    inclusive :math:`KL(p\,\|\,q)`. The chain state holds every site of the
    guide (auxiliary unconstrained sites included), so ``log q`` is exact.

    Args:
        kernel: ``kernel(rng_key, position, model, guide, params, *args,
            **kwargs) -> position``, any MCMC kernel whose target is the
            posterior: :func:`mcmc_kernel` (HMC or NUTS of
            :mod:`bayes.inference.mcmc`), a user-written one, or by default
            :func:`cis_kernel` with ``num_particles``.
        num_particles: Particles of the default CIS kernel.

    Returns:
        The objective, as a :class:`StatefulObjective`; its value is ``log q(z_t)``.
    """
    kernel = kernel or cis_kernel(num_particles)

    def init(model, guide, params, *args, rng_key, **kwargs):
        draw = guide_draw(
            guide, params, *args, rng_key=rng_key, default_estimator="detach", **kwargs
        )
        return jax.lax.stop_gradient(draw.values)

    def program(model, guide, params, state, *args, rng_key, **kwargs):
        position = kernel(rng_key, state, model, guide, params, *args, **kwargs)
        log_q = _guide_log_density(guide, position, params, args, kwargs)
        return log_q, position

    return StatefulObjective(init, program)


def hierarchical_elbo(
    aux_site: str, reverse: Callable[..., Any], num_aux: int = 1
) -> Callable[..., jax.Array]:
    r"""Hierarchical VI bound for a guide with an auxiliary variable (Ranganath et al. 2016).

    The guide draws :math:`\lambda \sim q(\lambda)` then :math:`z \sim q(z|\lambda)`; the
    marginal :math:`q(z)` is approximated by importance sampling with the
    reverse model :math:`r(\lambda|z)`, keeping the :math:`\lambda_0` that generated
    ``z`` among the ``L`` samples:

    .. math::
        \log \hat q(z) = \log \frac1L \Big(\frac{q(z,\lambda_0)}{r(\lambda_0|z)}
        + \sum_{l=1}^{L-1} \frac{q(z,\lambda_l)}{r(\lambda_l|z)}\Big),
        \quad \lambda_{l \ge 1} \sim r(\cdot|z).

    :math:`\mathbb E[\log \hat q(z)] \ge \log q(z)`, so
    :math:`\mathbb E[\log p(x,z) - \log \hat q(z)]` is a lower bound on the ELBO
    that tightens as ``L`` grows (``L = 1`` is the bound of Ranganath et al.).

    Args:
        aux_site: Name of the auxiliary site in the guide.
        reverse: ``reverse(values, *args, **kwargs) -> Distribution`` over the
            auxiliary variable given the guide's other values; its parameters
            come from ``numpyro.param`` sites inside it.
        num_aux: ``L``, number of auxiliary samples.
    """

    def log_r(values, params, lam, args, kwargs):
        def program(*a, **kw):
            import numpyro

            numpyro.sample(aux_site, reverse(values, *a, **kw), obs=lam)

        return log_density(program, args, kwargs, params)[0]

    def program(model, guide, params, *args, rng_key, **kwargs):
        key_draw, key_aux = jax.random.split(rng_key)
        draw = guide_draw(guide, params, *args, rng_key=key_draw, **kwargs)
        z = {k: v for k, v in draw.values.items() if k != aux_site}
        lam0 = draw.values[aux_site]
        terms = [draw.log_prob - log_r(z, params, lam0, args, kwargs)]
        if num_aux > 1:
            keys = jax.random.split(key_aux, num_aux - 1)

            def other(key):
                import numpyro
                from numpyro.handlers import seed, substitute, trace

                def sampler(*a, **kw):
                    numpyro.sample(aux_site, reverse(z, *a, **kw))

                tr = trace(substitute(seed(sampler, key), data=params)).get_trace(*args, **kwargs)
                lam = tr[aux_site]["value"]
                joint = _guide_log_density(guide, {**z, aux_site: lam}, params, args, kwargs)
                return joint - log_r(z, params, lam, args, kwargs)

            terms.append(jax.vmap(other)(keys))
        log_q_hat = log_mean_exp(jnp.concatenate([jnp.atleast_1d(t) for t in terms]))
        return model_log_density(model, z, params, *args, **kwargs) - log_q_hat

    def reverse_program(values, *args, **kwargs):
        import numpyro

        z = {k: v for k, v in values.items() if k != aux_site}
        numpyro.sample(aux_site, reverse(z, *args, **kwargs))

    # init_params traces these to find the reverse model's parameters.
    program.param_programs = (reverse_program,)
    return program
