r"""NIW few-shot meta-learning (Kim & Hospedales, 2023): one-time episodic updates.

Model: global ``(mu, Sigma) ~ NIW`` (prior ``p``), episode weights
``theta_i ~ N(mu, Sigma)``, data ``D_i | theta_i`` from a network likelihood.
Variational families ``q(mu, Sigma) = NIW(m0, kappa0, Psi0, n0)`` (diagonal
``Psi0``) and ``q(theta_i) = N(m_i, V_i)`` (diagonal ``V_i``).

Per episode, a few gradient steps from ``m0`` give ``m_bar`` (mean of the
last iterates) and the Gauss-Newton diagonal ``A`` (clipped) at ``m_bar``, so that
``-log p(D_i | theta) ~ L(m_bar) + (theta - m_bar)' A (theta - m_bar) / 2``.
With ``P = E_q[Sigma^-1] = n0 Psi0^-1`` the local ELBO is maximized in closed form:

.. math::

    V_i = (A + P)^{-1}, \qquad m_i = V_i (A \bar m_i + P m_0).

The global loss is the negative ELBO with this local optimum substituted
(``m_bar`` held constant), averaged over the episodes of a batch, plus
``KL(q(mu, Sigma) || p) / num_episodes``; its gradient in ``m0`` is a
precision-weighted Reptile step ``P (m0 - m_i)``. No inner-loop graph is kept:
memory does not grow with the number of inner steps.

Test time: the global variable is fixed at its mode ``(m0, Sigma*)``; the
closed-form local posterior of the support set initializes a few steps of
reparameterized VI on ``q(theta*) = N(m, diag v)`` against the prior
``N(m0, Sigma*)`` (the mean moves in units of the closed form's standard
deviations), and predictions average the network over draws of ``theta*``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .common import Likelihood, MetaLearner
from .data import Episode, check_episode, check_task
from .distribution import NIW, expected_log_det, expected_precision, niw_kl, niw_mode
from .nets import Network

__all__ = [
    "GlobalParams",
    "LocalQuadratic",
    "NIWInfo",
    "NIWState",
    "global_niw",
    "local_posterior",
    "local_quadratic",
    "niw_meta_learner",
]


class GlobalParams(NamedTuple):
    """Unconstrained variational parameters of ``q(mu, Sigma)`` and of the likelihood.

    Attributes:
        mean: ``m0``, shape ``(D,)``.
        log_kappa: ``log kappa0``, scalar.
        log_psi: ``log Psi0`` (diagonal), shape ``(D,)``.
        log_dof: ``log n0``, scalar.
        lik: Likelihood parameters (e.g. ``{"log_noise": ...}``).
    """

    mean: jax.Array
    log_kappa: jax.Array
    log_psi: jax.Array
    log_dof: jax.Array
    lik: dict[str, jax.Array]


class NIWState(NamedTuple):
    """Meta-training state: global parameters and the optax state."""

    params: GlobalParams
    opt_state: Any


class NIWInfo(NamedTuple):
    """Diagnostics of one meta-iteration (batch means).

    Attributes:
        loss: Negative ELBO per episode.
        expected_nll: ``E_q[-log p(D_i | theta_i)]`` under the quadratic model.
        local_kl: ``E_q(mu,Sigma)[KL(q(theta_i) || N(mu, Sigma))]``.
        global_kl: ``KL(q(mu, Sigma) || p) / num_episodes``.
    """

    loss: jax.Array
    expected_nll: jax.Array
    local_kl: jax.Array
    global_kl: jax.Array


class LocalQuadratic(NamedTuple):
    """Quadratic model of an episode's negative log-likelihood around ``m_bar``.

    Attributes:
        m_bar: Centre, shape ``(D,)``.
        curvature: Clipped Gauss-Newton diagonal ``A``, shape ``(D,)``.
        nll: ``L(m_bar)``, the summed negative log-likelihood at the centre.
    """

    m_bar: jax.Array
    curvature: jax.Array
    nll: jax.Array


def global_niw(params: GlobalParams) -> NIW:
    """The diagonal :class:`NIW` of the unconstrained ``params``."""
    return NIW(
        params.mean, jnp.exp(params.log_kappa), jnp.exp(params.log_psi), jnp.exp(params.log_dof)
    )


def local_posterior(
    m_bar: jax.Array, curvature: jax.Array, prior_mean: jax.Array, prior_precision: jax.Array
) -> tuple[jax.Array, jax.Array]:
    r"""Closed-form optimum of the local ELBO (diagonal).

    Maximizes :math:`-\tfrac12[(m-\bar m)^\top A (m-\bar m) + \mathrm{tr}(AV)]
    - \tfrac12[\mathrm{tr}(PV) + (m-m_0)^\top P (m-m_0) - \log|V|]` over ``(m, V)``.

    Args:
        m_bar: ``(D,)`` centre of the quadratic likelihood model.
        curvature: ``(D,)`` its curvature ``A >= 0``.
        prior_mean: ``(D,)`` ``m0``.
        prior_precision: ``(D,)`` ``P = E[Sigma^-1]``.

    Returns:
        ``(m, v)``: posterior mean and variances, each ``(D,)``.
    """
    v = 1.0 / (curvature + prior_precision)
    return v * (curvature * m_bar + prior_precision * prior_mean), v


def _nll_and_curvature(network, likelihood, theta, x, y, lik_params):
    outputs = network.apply(theta, x)
    nll_one = lambda o, yi: likelihood.nll(o, yi, lik_params)  # noqa: E731
    nll = jnp.sum(jax.vmap(nll_one)(outputs, y))
    hess = jax.vmap(jax.hessian(nll_one))(outputs, y)  # (N, O, O)
    if getattr(network, "gauss_newton_diag", None) is not None:
        return nll, network.gauss_newton_diag(theta, x, hess)

    def out_one(th, xi):
        return network.apply(th, xi[None])[0]

    jac = jax.vmap(jax.jacrev(out_one), in_axes=(None, 0))(theta, x)  # (N, O, D)
    return nll, jnp.einsum("nad,nab,nbd->d", jac, hess, jac)


def local_quadratic(
    network: Network,
    likelihood: Likelihood,
    theta0: jax.Array,
    x: jax.Array,
    y: jax.Array,
    lik_params: dict[str, jax.Array],
    *,
    num_steps: int,
    step_size: float = 0.01,
    max_grad_norm: float = 10.0,
    num_average: int = 1,
    curvature_clip: tuple[float, float] = (0.0, 1e4),
) -> LocalQuadratic:
    """Fit the quadratic model of one episode's negative log-likelihood ``L``.

    Runs ``num_steps`` gradient-descent steps on the inner loss (per-point mean
    of MSE or cross-entropy, as MAML's inner loop) from ``theta0``, each step's
    gradient clipped to norm ``max_grad_norm`` so that a sharp start cannot
    diverge. No gradient flows through the steps. ``m_bar`` is the mean of the
    last ``num_average`` iterates; ``L(m_bar)`` and the clipped Gauss-Newton
    diagonal ``A(m_bar)`` stay differentiable in ``lik_params``.

    Args:
        network: The likelihood network.
        likelihood: Observation model.
        theta0: ``(D,)`` starting weights (the global mean).
        x: ``(N, in_dim)`` episode inputs.
        y: ``(N, out_dim)`` targets or ``(N,)`` labels.
        lik_params: Likelihood parameters.
        num_steps: Number of steps (``>= num_average >= 1``).
        step_size: Learning rate.
        max_grad_norm: Gradient-norm clip of each step.
        num_average: Iterates averaged into ``m_bar``.
        curvature_clip: ``(low, high)`` bounds for ``A``.

    Returns:
        The quadratic model, as a :class:`LocalQuadratic`.
    """
    theta0 = jax.lax.stop_gradient(theta0)
    loss = lambda th: likelihood.loss(network.apply(th, x), y)  # noqa: E731

    def body(k, carry):
        theta, total = carry
        g = jax.grad(loss)(theta)
        g = g * jnp.minimum(1.0, max_grad_norm / (jnp.linalg.norm(g) + 1e-12))
        theta = theta - step_size * g
        return theta, total + jnp.where(k >= num_steps - num_average, theta, 0.0)

    _, total = jax.lax.fori_loop(0, num_steps, body, (theta0, jnp.zeros_like(theta0)))
    m_bar = jax.lax.stop_gradient(total / num_average)
    nll, curv = _nll_and_curvature(network, likelihood, m_bar, x, y, lik_params)
    return LocalQuadratic(m_bar, jnp.clip(curv, *curvature_clip), nll)


def _check(num_steps, num_average, num_episodes):
    if not 1 <= num_average <= num_steps:
        raise ValueError(
            f"need 1 <= num_average <= num_inner_steps, got {num_average} and {num_steps}"
        )
    if not num_episodes > 0:
        raise ValueError(f"num_episodes must be positive, got {num_episodes}")


def niw_meta_learner(
    network: Network,
    likelihood: Likelihood,
    optimizer: optax.GradientTransformation,
    *,
    num_inner_steps: int = 5,
    inner_step_size: float = 0.01,
    num_average: int = 1,
    max_grad_norm: float = 10.0,
    curvature_clip: tuple[float, float] = (0.0, 1e4),
    prior: NIW | None = None,
    num_episodes: float = 1e4,
    init_variance: float = 1e-3,
    init_dof: float = 2.0,
    use_query: bool = True,
    num_vi_steps: int = 10,
    vi_step_size: float = 1e-2,
    num_vi_samples: int = 4,
    num_predict_samples: int = 20,
) -> MetaLearner:
    """The NIW meta-learner.

    Args:
        network: Likelihood network over flat weights ``(D,)``.
        likelihood: Observation model (its ``lik_params`` are learned if it says so).
        optimizer: optax transformation for the global parameters.
        num_inner_steps: Gradient steps of the per-episode quadratic fit (see
            :func:`local_quadratic`).
        inner_step_size: Their learning rate.
        num_average: Last iterates averaged into ``m_bar``.
        max_grad_norm: Gradient-norm clip of the inner steps.
        curvature_clip: ``(low, high)`` bounds on the Gauss-Newton diagonal. A large
            ``low`` (a curvature floor) makes the quadratic model treat the inner
            loop's ``m_bar`` as the episode's solution: the diagonal Gauss-Newton
            curvature of an early-stopped ``m_bar`` is too weak in most weights,
            and then the closed form drags ``m_bar`` back to ``m0`` and the
            learned ``Sigma`` shrinks towards 0 (see ``docs/zoo/niw.md``).
        prior: NIW prior on ``(mu, Sigma)``; default ``NIW(0, 1e-4, 1e-3, 1)`` (diagonal, vague).
        num_episodes: Effective number of training episodes weighting the prior KL.
        init_variance: Initial ``Psi0 / n0`` (prior variance of every weight).
        init_dof: Initial ``n0``.
        use_query: During meta-training fit each episode's local posterior on
            support and query points (all of the episode's data); tests use the
            support set only.
        num_vi_steps: Test-time VI steps (Adam) refining the closed-form posterior;
            the mean is parameterized as ``m + sqrt(v) * offset`` so that a step
            moves it by about ``vi_step_size`` posterior standard deviations.
        vi_step_size: Their learning rate.
        num_vi_samples: Monte Carlo draws per VI step.
        num_predict_samples: Draws of ``theta*`` averaged by ``predict``.

    Returns:
        The meta-learner, a :class:`~bayes.models.niw.common.MetaLearner` named ``"NIW"``.
    """
    _check(num_inner_steps, num_average, num_episodes)
    dim = network.num_params
    if prior is None:
        # A vague mean (tiny kappa): the weights' scale must not be pulled to 0
        # by a prior whose spread is tied to the learned, small Sigma.
        prior = NIW(jnp.zeros((dim,)), jnp.asarray(1e-4), jnp.full((dim,), 1e-3), jnp.asarray(1.0))
    fit = lambda th, x, y, lik: local_quadratic(  # noqa: E731
        network, likelihood, th, x, y, lik, num_steps=num_inner_steps,
        step_size=inner_step_size, num_average=num_average, max_grad_norm=max_grad_norm,
        curvature_clip=curvature_clip,
    )  # fmt: skip

    def init(rng_key: jax.Array) -> NIWState:
        params = GlobalParams(
            mean=network.init(rng_key),
            log_kappa=jnp.zeros((), jnp.float32),
            log_psi=jnp.full((dim,), jnp.log(init_variance * init_dof), jnp.float32),
            log_dof=jnp.log(jnp.asarray(init_dof, jnp.float32)),
            lik=dict(likelihood.init_params),
        )
        return NIWState(params, optimizer.init(params))

    def loss_fn(params: GlobalParams, episode: Episode):
        niw = global_niw(params)
        prec = expected_precision(niw)
        lik = params.lik if likelihood.learn_params else jax.lax.stop_gradient(params.lik)

        def per_task(xs, ys, xq, yq):
            x, y = (jnp.concatenate([xs, xq]), jnp.concatenate([ys, yq])) if use_query else (xs, ys)
            quad = fit(params.mean, x, y, lik)
            m, v = local_posterior(quad.m_bar, quad.curvature, params.mean, prec)
            enll = quad.nll + 0.5 * jnp.sum(quad.curvature * ((m - quad.m_bar) ** 2 + v))
            kl = 0.5 * (
                jnp.sum(prec * (v + (m - params.mean) ** 2) - jnp.log(v))
                + dim * (1.0 / niw.kappa - 1.0)
                + expected_log_det(niw)
            )
            return enll, kl

        enll, kl = jax.vmap(per_task)(*episode)
        gkl = niw_kl(niw, prior) / num_episodes
        loss = jnp.mean(enll + kl) + gkl
        return loss, NIWInfo(loss, jnp.mean(enll), jnp.mean(kl), gkl)

    def step(rng_key: jax.Array, state: NIWState, episode: Episode) -> tuple[NIWState, NIWInfo]:
        check_episode(episode)
        del rng_key  # the gradient inner loop is deterministic
        grads, info = jax.grad(loss_fn, has_aux=True)(state.params, episode)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        return NIWState(optax.apply_updates(state.params, updates), opt_state), info

    def predict(rng_key, state: NIWState, x_support, y_support, x_query) -> jax.Array:
        check_task(x_support, y_support, x_query)
        params = state.params
        mu, sigma = niw_mode(global_niw(params))
        prec = 1.0 / sigma
        quad = fit(mu, x_support, y_support, params.lik)
        m, v = local_posterior(quad.m_bar, quad.curvature, mu, prec)

        # The mean is optimized in units of the closed-form posterior's standard
        # deviation: Adam's steps are ~vi_step_size per coordinate, which in raw
        # weight units would swamp a posterior whose spread is 1e-3 or less.
        scale = jnp.sqrt(v)

        def neg_elbo(var, key):
            offset, log_v = var
            mean = m + scale * offset
            eps = jax.random.normal(key, (num_vi_samples, dim))
            thetas = mean + jnp.exp(0.5 * log_v) * eps
            nll = lambda th: jnp.sum(  # noqa: E731
                jax.vmap(likelihood.nll, in_axes=(0, 0, None))(
                    network.apply(th, x_support), y_support, params.lik
                )
            )
            enll = jnp.mean(jax.vmap(nll)(thetas))
            vp = jnp.exp(log_v) * prec
            return enll + 0.5 * jnp.sum(vp + prec * (mean - mu) ** 2 - 1.0 - jnp.log(vp))

        vi_opt = optax.adam(vi_step_size)
        k_vi, k_draw = jax.random.split(rng_key)

        def vi_step(carry, key):
            var, opt_state = carry
            g = jax.grad(neg_elbo)(var, key)
            upd, opt_state = vi_opt.update(g, opt_state, var)
            return (optax.apply_updates(var, upd), opt_state), None

        var0 = (jnp.zeros_like(m), jnp.log(v))
        (var, _), _ = jax.lax.scan(
            vi_step, (var0, vi_opt.init(var0)), jax.random.split(k_vi, num_vi_steps)
        )
        eps = jax.random.normal(k_draw, (num_predict_samples, dim))
        thetas = m + scale * var[0] + jnp.exp(0.5 * var[1]) * eps
        return jax.vmap(lambda th: network.apply(th, x_query))(thetas)

    return MetaLearner(init=init, step=step, predict=predict, name="NIW")
