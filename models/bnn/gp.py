"""Exact GPs on padded data with infinite-width (NNGP), deep-kernel and Student-t variants.

Every kernel here is ``kernel(config, params, x1, x2) -> (n1, n2)`` with a
hashable ``config`` and a dict of unconstrained hyperparameters:

- ``"ibnn"``: the NNGP kernel of an infinitely wide MLP (ReLU arc-cosine or
  erf arcsin recursion, from :mod:`bayes.models.nngp`), with learned weight and
  bias variances; inputs in the unit cube are centred to ``[-1, 1]^d``;
- ``"dkl"``: deep kernel learning, a Matérn-5/2 kernel with ARD length
  scales on the features of an MLP (:mod:`~bayes.models.bnn.mlp`), trained
  jointly with the GP hyperparameters.

Hyperparameters maximize the log marginal likelihood with Adam. On padded
data (mask ``r``), the covariance is

.. math::

    C = (r r^\\top) \\odot (K + \\sigma^2 I) + \\mathrm{diag}(1 - r),

so padded rows are independent unit-variance zeros that add nothing to the
quadratic form or the log-determinant. The ``"student_t"`` family puts an
inverse-gamma prior ``s ~ IG(a, b)`` on a scale of ``C`` (the scale mixture of
NNGPs of Lee et al. 2022); its marginal likelihood and the posterior
``s | y ~ IG(a + n/2, b + y^T C^{-1} y / 2)`` are closed forms.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.scipy.special import gammaln

from .data import PaddedData
from .mlp import MLPConfig, apply, init_params

__all__ = [
    "FAMILIES",
    "GPFactor",
    "GPPrediction",
    "KernelConfig",
    "factorize",
    "fit_gp",
    "init_hyperparameters",
    "kernel",
    "log_marginal_likelihood",
    "predict_joint",
]

FAMILIES = ("gaussian", "student_t")
_LOG_2PI = math.log(2 * math.pi)


class KernelConfig(NamedTuple):
    """Which kernel, and its static settings (hashable).

    Attributes:
        kind: ``"ibnn"`` or ``"dkl"``.
        depth: Hidden layers of the infinitely wide network (``ibnn``).
        activation: ``"relu"`` or ``"erf"`` (``ibnn``).
        feature_net: Feature network (``dkl``), its ``out_dim`` is the feature dimension.
    """

    kind: str = "ibnn"
    depth: int = 3
    activation: str = "relu"
    feature_net: MLPConfig | None = None


def init_hyperparameters(config: KernelConfig, *, rng_key: jax.Array) -> dict[str, jax.Array]:
    """Initial unconstrained hyperparameters (log scales; network weights for ``dkl``)."""
    base = {"log_noise_var": jnp.log(1e-2), "log_scale": jnp.zeros(())}
    if config.kind == "ibnn":
        return {**base, "log_weight_var": jnp.log(2.0), "log_bias_var": jnp.log(0.1)}
    if config.kind == "dkl":
        net = config.feature_net
        return {
            **base,
            "w": init_params(net, rng_key=rng_key),
            "log_lengthscale": jnp.zeros(net.out_dim),
        }
    raise ValueError(f"unknown kernel kind {config.kind!r}; use 'ibnn' or 'dkl'")


def _matern52(z1, z2):
    d2 = jnp.sum((z1[:, None, :] - z2[None, :, :]) ** 2, axis=-1)
    r = jnp.sqrt(jnp.maximum(d2, 1e-30)) * math.sqrt(5.0)
    return (1 + r + r**2 / 3) * jnp.exp(-r)


def kernel(config: KernelConfig, params: dict[str, Any], x1: jax.Array, x2: jax.Array):
    """Kernel matrix ``k(x1, x2)``, shape ``(n1, n2)`` (without noise)."""
    scale = jnp.exp(params["log_scale"])
    if config.kind == "ibnn":
        from bayes.models.nngp import kernel_matrix

        k = kernel_matrix(
            2 * x1 - 1, 2 * x2 - 1,
            weight_variance=jnp.exp(params["log_weight_var"]),
            bias_variance=jnp.exp(params["log_bias_var"]),
            depth=config.depth, activation=config.activation,
        )  # fmt: skip
        return scale * k
    net = config.feature_net
    ls = jnp.exp(params["log_lengthscale"])
    return scale * _matern52(apply(net, params["w"], x1) / ls, apply(net, params["w"], x2) / ls)


def _masked_cov(config, params, data: PaddedData) -> jax.Array:
    k = kernel(config, params, data.x, data.x)
    r = data.mask
    noise = jnp.exp(params["log_noise_var"]) + 1e-6
    return (r[:, None] * r[None, :]) * k + jnp.diag(r * noise + (1 - r))


def _quad_logdet(config, params, data: PaddedData, y: jax.Array):
    chol = jnp.linalg.cholesky(_masked_cov(config, params, data))
    alpha = jax.scipy.linalg.cho_solve((chol, True), y * data.mask)
    quad = jnp.sum(y * data.mask * alpha)
    logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return quad, logdet, chol, alpha


def log_marginal_likelihood(
    config: KernelConfig,
    params: dict[str, Any],
    data: PaddedData,
    y: jax.Array,
    *,
    family: str = "gaussian",
    concentration: float = 2.0,
    rate: float = 2.0,
) -> jax.Array:
    """``log p(y | x, params)`` of one output ``y`` (shape ``(n_pad,)``) on the real rows.

    ``family="student_t"`` integrates the scale ``s ~ IG(concentration, rate)``:
    ``log Γ(a_n) - log Γ(a) + a log b - a_n log b_n - n/2 log 2π - 1/2 log|C|``.
    """
    quad, logdet, _, _ = _quad_logdet(config, params, data, y)
    n = data.mask.sum()
    if family == "gaussian":
        return -0.5 * (quad + logdet + n * _LOG_2PI)
    a, b = concentration, rate
    a_n, b_n = a + 0.5 * n, b + 0.5 * quad
    return (
        gammaln(a_n)
        - gammaln(a)
        + a * jnp.log(b)
        - a_n * jnp.log(b_n)
        - 0.5 * (n * _LOG_2PI + logdet)
    )


def _log_prior(params) -> jax.Array:
    # Weak log-normal priors keep the optimizer away from degenerate noise and scales.
    lp = -0.5 * ((params["log_noise_var"] - math.log(1e-2)) / 3.0) ** 2
    return lp - 0.5 * (params["log_scale"] / 3.0) ** 2


@functools.partial(jax.jit, static_argnames=("config", "family", "num_steps"))
def _fit(config, family, params0, data, learning_rate, concentration, rate, num_steps):
    def one_output(y):
        opt = optax.adam(learning_rate)

        def loss(p):
            lml = log_marginal_likelihood(config, p, data, y, family=family,
                                          concentration=concentration, rate=rate)  # fmt: skip
            return -(lml + _log_prior(p)) / jnp.maximum(data.mask.sum(), 1.0)

        def step(carry, _):
            p, state = carry
            value, grads = jax.value_and_grad(loss)(p)
            updates, state = opt.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), value

        (p, _), trace = jax.lax.scan(step, (params0, opt.init(params0)), None, num_steps)
        lml = log_marginal_likelihood(config, p, data, y, family=family,
                                      concentration=concentration, rate=rate)  # fmt: skip
        return p, lml, trace

    return jax.vmap(one_output, in_axes=1)(data.y)


def fit_gp(
    config: KernelConfig,
    data: PaddedData,
    *,
    rng_key: jax.Array,
    family: str = "gaussian",
    num_steps: int = 300,
    learning_rate: float = 0.05,
    concentration: float = 2.0,
    rate: float = 2.0,
) -> tuple[dict[str, jax.Array], jax.Array]:
    """Fit the hyperparameters of one independent GP per output by marginal likelihood.

    Returns:
        ``(params, lml)``: hyperparameters with a leading output axis ``m``
            and the log marginal likelihood of each output at the fit, ``(m,)``.

    Raises:
        ValueError: Unknown family.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {FAMILIES}")
    params0 = init_hyperparameters(config, rng_key=rng_key)
    params, lml, _ = _fit(config, family, params0, data, learning_rate, concentration, rate,
                          num_steps)  # fmt: skip
    return params, lml


class GPPrediction(NamedTuple):
    """Joint posterior of the latent function at ``q`` points, one output.

    Attributes:
        mean: Shape ``(q,)``.
        cov: Shape ``(q, q)``; for ``student_t`` the covariance at unit scale
            (multiply by a draw of ``s``).
        scale_shape: ``a_n`` of the scale posterior (``student_t``; else ``inf``).
        scale_rate: ``b_n`` of the scale posterior (``student_t``; else ``inf``).
    """

    mean: jax.Array
    cov: jax.Array
    scale_shape: jax.Array
    scale_rate: jax.Array


class GPFactor(NamedTuple):
    """What prediction needs from the training data of one output.

    Attributes:
        chol: Cholesky factor of the masked covariance, ``(n_pad, n_pad)``.
        alpha: ``C^{-1} (r * y)``, ``(n_pad,)``.
        quad: ``y^T C^{-1} y`` on the real rows, ``()``.
    """

    chol: jax.Array
    alpha: jax.Array
    quad: jax.Array


def factorize(config: KernelConfig, params: dict[str, Any], data: PaddedData, y: jax.Array):
    """Factorize the training covariance of one output ``y`` (shape ``(n_pad,)``)."""
    quad, _, chol, alpha = _quad_logdet(config, params, data, y)
    return GPFactor(chol, alpha, quad)


def predict_joint(
    config: KernelConfig,
    params: dict[str, Any],
    data: PaddedData,
    factor: GPFactor,
    xq: jax.Array,
    *,
    family: str = "gaussian",
    concentration: float = 2.0,
    rate: float = 2.0,
) -> GPPrediction:
    """Posterior of ``f(xq)`` (``xq`` of shape ``(q, d)``) for one output.

    ``factor`` comes from :func:`factorize`; computing it once and calling
    this under ``vmap`` over batches of ``xq`` keeps the ``O(n^3)`` work out
    of the batch.
    """
    kxq = kernel(config, params, data.x, xq) * data.mask[:, None]
    kqq = kernel(config, params, xq, xq)
    mean = kxq.T @ factor.alpha
    v = jax.scipy.linalg.solve_triangular(factor.chol, kxq, lower=True)
    cov = kqq - v.T @ v
    cov = 0.5 * (cov + cov.T) + 1e-9 * jnp.eye(xq.shape[0])
    if family == "gaussian":
        inf = jnp.asarray(jnp.inf, mean.dtype)
        return GPPrediction(mean, cov, inf, inf)
    return GPPrediction(mean, cov, concentration + 0.5 * data.mask.sum(), rate + 0.5 * factor.quad)
