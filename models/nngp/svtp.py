r"""Sparse variational Student-t process classifier through the VI layer.

The ``C`` latent functions share one readout scale ``s`` (the scale mixture of
Lee et al., ICLR 2022) and the NNGP kernel ``K``:

.. math::

    s \sim \mathrm{InvGamma}(a, b), \quad
    u_c \mid s \sim \mathcal N(0, s I_M), \quad
    f_c(X) \mid u_c, s \sim \mathcal N(A u_c,\ s\, \mathrm{diag}(v)), \quad
    y_i \mid f \sim \mathrm{Categorical}(\mathrm{softmax}(f(x_i))),

with whitened inducing values ``u_c = L_Z^{-1} f_c(Z)`` at ``M`` inducing
inputs ``Z`` (``L_Z L_Z^T = K_{ZZ} + \epsilon I``), ``A = K_{XZ} L_Z^{-T}``
and ``v = \mathrm{diag}(K_{XX}) - \mathrm{rowsum}(A \circ A)`` (the sparse-GP
conditional). ``likelihood="gaussian"`` replaces the softmax by
``y_i \mid f \sim \mathcal N(f(x_i), s \sigma^2 I_C)`` (the conjugate sanity
version: noise scaled with the readout variance).

The variational family couples the inducing values to the scale:

.. math::

    q(s) = \mathrm{InvGamma}(\alpha, \beta), \quad
    q(u_c \mid s) = \mathcal N(m_c, s\, S_c), \quad
    q(f \mid u, s) = p(f \mid u, s),

with ``S_c = L_c L_c^T`` (``L_c`` lower triangular). The ``f`` sites of model
and guide carry the same density, so one draw of the VI layer's
:func:`~bayes.inference.vi.elbo` is
``log p(y | f) + log p(u | s) + log p(s) - log q(u | s) - log q(s)``: the
usual sparse-GP bound, with ``log p(y | f)`` estimated by the reparameterised
``f``. The family holds the exact posterior of the Gaussian version when the
inducing inputs are the training inputs, so there the bound equals the
closed-form Student-t log marginal likelihood for every draw. The scale is
drawn with the estimator chosen per site (``"reparam"``: implicit
reparameterisation of the gamma draw, or ``"score"``).

Predictions: ``f_{*c} | s ~ N(A_* m_c, s (v_* + diag(A_* S_c A_*^T)))`` and
``s ~ q(s)``, so the latent predictive is a Student-t with ``2 alpha`` degrees
of freedom; class probabilities average the softmax over draws of ``s`` and ``f_*``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from .kernels import kernel_diag, kernel_matrix

__all__ = [
    "SVTP",
    "SVTPFit",
    "svtp",
    "svtp_class_probabilities",
    "svtp_fit",
    "svtp_latent_predict",
]

_LIKELIHOODS = ("softmax", "gaussian")


class SVTP(NamedTuple):
    """A model/guide pair and its settings (from :func:`svtp`).

    Attributes:
        model: NumPyro model ``model(x, y)``; ``x`` ``(n, d)``, ``y`` integer labels
            ``(n,)`` (softmax) or targets ``(n, C)`` (gaussian).
        guide: NumPyro guide with the same signature.
        kernel: ``kernel(x1, x2)`` and ``kernel(x)`` (diagonal) closures.
        settings: The keyword settings given to :func:`svtp`.
    """

    model: Callable
    guide: Callable
    kernel: Any
    settings: dict[str, Any]


class SVTPFit(NamedTuple):
    """Result of :func:`svtp_fit`.

    Attributes:
        svtp: The :class:`SVTP` that was fitted.
        params: Constrained variational parameters (``svtp_loc`` ``(C, M)``,
            ``svtp_scale_tril`` ``(C, M, M)``, ``svtp_alpha``, ``svtp_beta`` ``()``,
            ``svtp_inducing`` ``(M, d)``).
        elbo_trace: One-draw ELBO at each step, shape ``(num_steps,)``.
    """

    svtp: SVTP
    params: dict[str, jax.Array]
    elbo_trace: jax.Array


def _conditional(kernel, z, x, jitter):
    """``(A, v, L_Z)``: ``A = K_XZ L_Z^{-T}`` ``(n, M)``, ``v`` ``(n,)``."""
    kzz = kernel[0](z, z)
    ridge = jitter * jnp.mean(jnp.diag(kzz))
    chol = jnp.linalg.cholesky(kzz + ridge * jnp.eye(z.shape[0], dtype=kzz.dtype))
    a = solve_triangular(chol, kernel[0](z, x), lower=True).T
    v = jnp.maximum(kernel[1](x) - jnp.sum(a * a, axis=1), 0.0) + ridge
    return a, v, chol


def svtp(
    inducing_inputs,
    num_classes: int,
    *,
    likelihood: str = "softmax",
    concentration: float = 2.0,
    rate: float = 2.0,
    noise_variance: float = 0.1,
    learn_inducing: bool = True,
    scale_estimator: str = "reparam",
    init_scale: float = 0.3,
    jitter: float = 1e-6,
    weight_variance: float = 2.0,
    bias_variance: float = 0.1,
    depth: int = 1,
    activation: str = "relu",
) -> SVTP:
    """Build the sparse variational Student-t process (model and guide).

    Args:
        inducing_inputs: Initial inducing inputs ``Z``, shape ``(M, d)`` (e.g. a subset
            of the training inputs).
        num_classes: ``C``.
        likelihood: ``"softmax"`` (labels) or ``"gaussian"`` (targets ``(n, C)``, noise
            ``s * noise_variance``).
        concentration: Prior shape ``a > 0`` of the scale.
        rate: Prior rate ``b > 0`` of the scale.
        noise_variance: ``sigma^2 > 0`` of the Gaussian likelihood.
        learn_inducing: Optimise ``Z`` with the other parameters.
        scale_estimator: Gradient estimator of the scale site (``"reparam"`` or ``"score"``).
        init_scale: Initial ``L_c = init_scale * I``.
        jitter: Added to ``K_ZZ`` relative to its mean diagonal.
        weight_variance, bias_variance, depth, activation: The NNGP kernel.

    Returns:
        The :class:`SVTP`.
    """
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    z0 = jnp.asarray(inducing_inputs)
    if z0.ndim != 2 or z0.shape[0] < 1:
        raise ValueError(f"inducing_inputs must have shape (M, d), got {z0.shape}")
    if likelihood not in _LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {_LIKELIHOODS}, got {likelihood!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    for name, value in [
        ("concentration", concentration),
        ("rate", rate),
        ("noise_variance", noise_variance),
        ("init_scale", init_scale),
    ]:
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if scale_estimator not in ("reparam", "score"):
        raise ValueError(f"scale_estimator must be 'reparam' or 'score', got {scale_estimator!r}")
    kw = dict(
        weight_variance=weight_variance,
        bias_variance=bias_variance,
        depth=depth,
        activation=activation,
    )
    kernel_matrix(z0[:1], **kw)  # validates the architecture eagerly
    kernel = (lambda a, b: kernel_matrix(a, b, **kw), lambda a: kernel_diag(a, **kw))
    m, c = z0.shape[0], num_classes

    def inducing():
        if learn_inducing:
            return numpyro.param("svtp_inducing", z0)
        return z0

    def latent(x, s, u):
        a, v, _ = _conditional(kernel, inducing(), x, jitter)
        return numpyro.sample(
            "f", dist.Normal(a @ u.T, jnp.sqrt(s * v)[:, None]).to_event(2)
        )  # (n, C)

    def model(x, y=None):
        s = numpyro.sample("s", dist.InverseGamma(concentration, rate))
        u = numpyro.sample("u", dist.Normal(0.0, jnp.sqrt(s)).expand([c, m]).to_event(2))
        f = latent(x, s, u)
        if likelihood == "softmax":
            numpyro.sample("y", dist.Categorical(logits=f).to_event(1), obs=y)
        else:
            noise = jnp.sqrt(s * noise_variance)
            numpyro.sample("y", dist.Normal(f, noise).to_event(2), obs=y)

    def guide(x, y=None):
        alpha = numpyro.param(
            "svtp_alpha", jnp.asarray(concentration), constraint=constraints.positive
        )
        beta = numpyro.param("svtp_beta", jnp.asarray(rate), constraint=constraints.positive)
        loc = numpyro.param("svtp_loc", jnp.zeros((c, m)))
        tril = numpyro.param(
            "svtp_scale_tril",
            jnp.broadcast_to(init_scale * jnp.eye(m), (c, m, m)),
            constraint=constraints.lower_cholesky,
        )
        s = numpyro.sample(
            "s", dist.InverseGamma(alpha, beta), infer={"estimator": scale_estimator}
        )
        u = numpyro.sample("u", dist.MultivariateNormal(loc, scale_tril=jnp.sqrt(s) * tril))
        latent(x, s, u)

    settings = dict(
        likelihood=likelihood,
        concentration=concentration,
        rate=rate,
        noise_variance=noise_variance,
        learn_inducing=learn_inducing,
        jitter=jitter,
        num_classes=num_classes,
        inducing_inputs=z0,
        **kw,
    )
    return SVTP(model, guide, kernel, settings)


def _check_data(x, y, likelihood, num_classes):
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got {x.shape}")
    if likelihood == "softmax":
        y = np.asarray(y)
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"labels must be integers of shape ({x.shape[0]},)")
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"labels must lie in 0..{num_classes - 1}")
        return x, jnp.asarray(y)
    y = jnp.asarray(y, x.dtype)
    if y.shape != (x.shape[0], num_classes) or not bool(jnp.all(jnp.isfinite(y))):
        raise ValueError(f"targets must be finite with shape ({x.shape[0]}, {num_classes})")
    return x, y


def svtp_fit(
    model: SVTP,
    x,
    y,
    *,
    rng_key: jax.Array,
    num_steps: int = 1000,
    learning_rate: float = 0.01,
) -> SVTPFit:
    """Maximise the ELBO with Adam through :func:`bayes.inference.vi.build` (one ``scan``).

    Args:
        model: From :func:`svtp`.
        x: Training inputs, shape ``(n, d)``.
        y: Labels ``(n,)`` or targets ``(n, C)`` (see :func:`svtp`).
        rng_key: PRNG key.
        num_steps: Optimisation steps.
        learning_rate: Adam step size.

    Returns:
        The :class:`SVTPFit`.
    """
    import optax
    from bayes.inference.vi import build, elbo, run_steps

    x, y = _check_data(x, y, model.settings["likelihood"], model.settings["num_classes"])
    init_key, state_key, run_key = jax.random.split(rng_key, 3)
    algo = build(elbo, model.model, model.guide, optax.adam(learning_rate), x, y, rng_key=init_key)
    state = algo.init(rng_key=state_key)
    state, info = jax.jit(run_steps, static_argnums=(0, 3))(algo.step, state, run_key, num_steps)
    params = {k: v for k, v in algo.constrain(state.params).items() if k.startswith("svtp_")}
    if not bool(jnp.all(jnp.isfinite(info.objective[-1]))):
        raise FloatingPointError("the ELBO is not finite at the end of the fit; lower the step")
    return SVTPFit(model, params, info.objective)


def svtp_latent_predict(fit: SVTPFit, x_test) -> tuple[jax.Array, jax.Array]:
    """Latent predictive at unit scale: ``f_* | s ~ N(loc, s * unit_var)``.

    Args:
        fit: From :func:`svtp_fit` (or an :class:`SVTPFit` with hand-set parameters).
        x_test: Test inputs, shape ``(m, d)``.

    Returns:
        ``(loc, unit_var)``, both of shape ``(m, C)``; with ``s ~ InvGamma(alpha, beta)``
        the latent predictive is Student-t, ``df = 2 alpha``, ``scale^2 = beta/alpha *
        unit_var``.
    """
    p, st = fit.params, fit.svtp.settings
    z = p.get("svtp_inducing", st["inducing_inputs"])
    a, v, _ = _conditional(fit.svtp.kernel, z, jnp.asarray(x_test), st["jitter"])
    loc = a @ p["svtp_loc"].T
    proj = jnp.einsum("nm,cmk->cnk", a, p["svtp_scale_tril"])
    return loc, v[:, None] + jnp.sum(proj * proj, axis=-1).T


def svtp_class_probabilities(
    fit: SVTPFit, x_test, *, rng_key: jax.Array, num_samples: int = 256, temperature=1.0
) -> jax.Array:
    """Monte Carlo ``p(y_* = k | x_*) = E_{q}[softmax(f_* / tau)_k]``, shape ``(m, C)``.

    ``temperature`` ``tau`` is 1 for the model's own predictive; other values let it be
    compared with classifiers whose temperature is tuned on validation data.
    """
    loc, unit_var = svtp_latent_predict(fit, x_test)
    k1, k2 = jax.random.split(rng_key)
    alpha, beta = fit.params["svtp_alpha"], fit.params["svtp_beta"]
    s = beta / jax.random.gamma(k1, alpha, (num_samples, loc.shape[0], 1), dtype=loc.dtype)
    eps = jax.random.normal(k2, (num_samples, *loc.shape), dtype=loc.dtype)
    logits = (loc + jnp.sqrt(s * unit_var) * eps) / temperature
    return jnp.mean(jax.nn.softmax(logits, axis=-1), axis=0)
