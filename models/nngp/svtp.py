r"""Sparse variational Student-t (and Gaussian) process classifier through the VI layer.

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
conditional). ``process="gaussian"`` makes ``s`` a hyperparameter (the sparse
variational GP baseline); ``likelihood="gaussian"`` replaces the softmax by
``y_i \mid f \sim \mathcal N(f(x_i), s \sigma^2 I_C)`` (noise scaled with the
readout variance: the conjugate version, used to check the bound).

The variational family couples the inducing values to the scale:
``q(s) = InvGamma(alpha, beta)``, ``q(u_c | s) = N(m_c, s S_c)`` (``S_c = L_c L_c^T``)
and ``q(f | u, s) = p(f | u, s)``. The bound is

.. math::

    \mathcal L = \sum_i \mathbb E_q[\log p(y_i \mid f_i)]
      - \tfrac12 \sum_c \left(\mathrm{tr} S_c + \mathbb E_q[s^{-1}]\, m_c^\top m_c
      - M - \log|S_c|\right) - \mathrm{KL}(q(s)\,\|\,p(s)),

with ``E[1/s] = alpha / beta``. Two estimators of it are objective programs for
:func:`bayes.inference.vi.build`
(:func:`~bayes.models.nngp.svtp_train.svtp_objective`, fitted by
:func:`~bayes.models.nngp.svtp_train.svtp_fit`): ``"joint"`` is the VI layer's
:func:`~bayes.inference.vi.elbo` of the NumPyro model and guide (one draw of ``s``,
``u`` and ``f``; the ``f`` densities cancel), and
``"marginal"`` keeps only the likelihood term stochastic: it depends on each
point through the marginal ``f_{ic} | s ~ N(A_i m_c, s (v_i + |A_i L_c|^2))``,
which is drawn once per point and class, the expectation over ``q(s)`` is a
24-node quadrature in ``log s``, and the two KL terms are exact; this cuts the
gradient noise by orders of magnitude and compiles without a gamma sampler.
Both subsample ``batch_size`` rows per step and scale the likelihood by
``n / batch_size``. The kernel's weight and bias variances are learned with
the other parameters by default.

Predictions: ``f_{*c} | s ~ N(A_* m_c, s (v_* + diag(A_* S_c A_*^T)))`` and
``s ~ q(s)``, so the latent predictive is a Student-t with ``2 alpha`` degrees
of freedom; class probabilities average the softmax over ``q(s)`` (quadrature)
and draws of ``f_*``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp

from bayes._blas import serial_blas

from ._svtp_bound import (
    _conditional,
    _kernel_values,
    _scale_nodes,
    _unit_marginals,
)
from .kernels import kernel_matrix

if TYPE_CHECKING:
    from jax.typing import ArrayLike

__all__ = [
    "SVTP",
    "SVTPFit",
    "svtp",
    "svtp_class_probabilities",
    "svtp_latent_predict",
]

_LIKELIHOODS = ("softmax", "gaussian")
_PROCESSES = ("student_t", "gaussian")


class SVTP(NamedTuple):
    """A model/guide pair and its settings (from :func:`svtp`).

    Attributes:
        model: NumPyro model ``model(x, y, num_data=None)``; ``x`` ``(b, d)``, ``y``
            integer labels ``(b,)`` (softmax) or targets ``(b, C)`` (gaussian); the
            likelihood is scaled by ``num_data / b`` when ``num_data`` is given.
        guide: NumPyro guide with the same signature.
        settings: The keyword settings given to :func:`svtp`.
        probabilities: Compiled ``(params, x_test, rng_key, temperature) -> (m, C)``
            class probabilities (``num_samples`` static), used by
            :func:`svtp_class_probabilities`.
    """

    model: Callable
    guide: Callable
    settings: dict[str, Any]
    probabilities: Callable


class SVTPFit(NamedTuple):
    """Result of :func:`~bayes.models.nngp.svtp_train.svtp_fit`.

    Attributes:
        svtp: The :class:`SVTP` that was fitted.
        params: Constrained parameters: ``svtp_loc`` ``(C, M)``, ``svtp_scale_tril``
            ``(C, M, M)``, ``svtp_inducing`` ``(M, d)``, ``svtp_alpha`` and ``svtp_beta``
            (Student-t) or ``svtp_scale`` (Gaussian) ``()``, and the learned kernel's
            ``svtp_weight_variance`` and ``svtp_bias_variance`` ``()``. Missing entries
            fall back to the settings.
        elbo_trace: Objective sample at each step, shape ``(num_steps,)``.
    """

    svtp: SVTP
    params: dict[str, jax.Array]
    elbo_trace: jax.Array | None


def svtp(
    inducing_inputs: ArrayLike,
    num_classes: int,
    *,
    process: str = "student_t",
    likelihood: str = "softmax",
    concentration: float = 2.0,
    rate: float = 2.0,
    noise_variance: float = 0.1,
    learn_inducing: bool = True,
    learn_kernel: bool = True,
    scale_estimator: str = "reparam",
    init_scale: float = 1.0,
    jitter: float = 1e-6,
    weight_variance: float = 2.0,
    bias_variance: float = 0.1,
    depth: int = 1,
    activation: str = "relu",
) -> SVTP:
    """Build the sparse variational Student-t (or Gaussian) process: model and guide.

    Args:
        inducing_inputs: Initial inducing inputs ``Z``, shape ``(M, d)`` (e.g. a subset
            of the training inputs).
        num_classes: ``C``.
        process: ``"student_t"`` (``s ~ InvGamma(a, b)``, variational ``q(s)``) or
            ``"gaussian"`` (``s`` a learned hyperparameter, initialised at ``b / a``).
        likelihood: ``"softmax"`` (labels) or ``"gaussian"`` (targets ``(n, C)``, noise
            ``s * noise_variance``).
        concentration: Prior shape ``a > 0`` of the scale.
        rate: Prior rate ``b > 0`` of the scale.
        noise_variance: ``sigma^2 > 0`` of the Gaussian likelihood.
        learn_inducing: Optimise ``Z`` with the other parameters.
        learn_kernel: Optimise the weight and bias variances (initialised at the values
            below; the bias variance must then be positive).
        scale_estimator: Gradient estimator of the scale site in the ``"joint"``
            objective (``"reparam"`` or ``"score"``).
        init_scale: Initial ``L_c = init_scale * I``.
        jitter: Added to ``K_ZZ`` relative to its mean diagonal.
        weight_variance: Weight variance ``sigma_w^2`` of the NNGP kernel (initial value
            when ``learn_kernel``).
        bias_variance: Bias variance ``sigma_b^2`` of the NNGP kernel (initial value
            when ``learn_kernel``).
        depth: Hidden layers of the NNGP kernel.
        activation: Activation of the NNGP kernel, ``"relu"`` or ``"erf"``.

    Returns:
        The model/guide pair, as an :class:`SVTP`.
    """
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    z0 = jnp.asarray(inducing_inputs)
    if z0.ndim != 2 or z0.shape[0] < 1:
        raise ValueError(f"inducing_inputs must have shape (M, d), got {z0.shape}")
    if process not in _PROCESSES:
        raise ValueError(f"process must be one of {_PROCESSES}, got {process!r}")
    if likelihood not in _LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {_LIKELIHOODS}, got {likelihood!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    positive = [("concentration", concentration), ("rate", rate)]
    positive += [("noise_variance", noise_variance), ("init_scale", init_scale)]
    if learn_kernel:
        positive.append(("bias_variance (learned)", bias_variance))
    for name, value in positive:
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if scale_estimator not in ("reparam", "score"):
        raise ValueError(f"scale_estimator must be 'reparam' or 'score', got {scale_estimator!r}")
    kw = dict(weight_variance=weight_variance, bias_variance=bias_variance)
    kw.update(depth=depth, activation=activation)
    kernel_matrix(z0[:1], **kw)  # validates the architecture eagerly
    m, c = z0.shape[0], num_classes
    dtype = z0.dtype

    def shared_params():
        """Parameters that model and guide both read (one value per name)."""
        p = {}
        if learn_inducing:
            p["svtp_inducing"] = numpyro.param("svtp_inducing", z0)
        for name in ("weight_variance", "bias_variance") if learn_kernel else ():
            p["svtp_" + name] = numpyro.param(
                "svtp_" + name, jnp.asarray(kw[name], dtype), constraint=constraints.positive
            )
        if process == "gaussian":
            p["svtp_scale"] = numpyro.param(
                "svtp_scale", jnp.asarray(rate / concentration, dtype),
                constraint=constraints.positive,
            )  # fmt: skip
        return p

    def latent(x, s, u, p):
        z = p.get("svtp_inducing", z0)
        a, v = _conditional(_kernel_values(settings, p), z, x, jitter)
        return numpyro.sample(
            "f", dist.Normal(a @ u.T, jnp.sqrt(s * v)[:, None]).to_event(2)
        )  # (n, C)

    def model(x, y=None, num_data=None):
        p = shared_params()
        if process == "gaussian":
            s = p["svtp_scale"]
        else:
            s = numpyro.sample("s", dist.InverseGamma(concentration, rate))
        u = numpyro.sample("u", dist.Normal(0.0, jnp.sqrt(s)).expand([c, m]).to_event(2))
        f = latent(x, s, u, p)
        weight = 1.0 if num_data is None else num_data / x.shape[0]
        with numpyro.handlers.scale(scale=weight):
            if likelihood == "softmax":
                numpyro.sample("y", dist.Categorical(logits=f).to_event(1), obs=y)
            else:
                noise = jnp.sqrt(s * noise_variance)
                numpyro.sample("y", dist.Normal(f, noise).to_event(2), obs=y)

    def guide(x, y=None, num_data=None):
        p = shared_params()
        loc = numpyro.param("svtp_loc", jnp.zeros((c, m), dtype))
        tril = numpyro.param(
            "svtp_scale_tril",
            jnp.broadcast_to(init_scale * jnp.eye(m, dtype=dtype), (c, m, m)),
            constraint=constraints.lower_cholesky,
        )
        if process == "gaussian":
            s = p["svtp_scale"]
        else:
            alpha = numpyro.param(
                "svtp_alpha", jnp.asarray(concentration, dtype), constraint=constraints.positive
            )
            beta = numpyro.param(
                "svtp_beta", jnp.asarray(rate, dtype), constraint=constraints.positive
            )
            s = numpyro.sample(
                "s", dist.InverseGamma(alpha, beta), infer={"estimator": scale_estimator}
            )
        u = numpyro.sample("u", dist.MultivariateNormal(loc, scale_tril=jnp.sqrt(s) * tril))
        latent(x, s, u, p)

    settings = dict(
        process=process,
        likelihood=likelihood,
        concentration=concentration,
        rate=rate,
        noise_variance=noise_variance,
        learn_inducing=learn_inducing,
        learn_kernel=learn_kernel,
        jitter=jitter,
        num_classes=num_classes,
        inducing_inputs=z0,
        **kw,
    )
    probabilities = jax.jit(partial(_class_probabilities, settings), static_argnums=(3,))
    return SVTP(model, guide, settings, probabilities)


def svtp_latent_predict(fit: SVTPFit, x_test: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Latent predictive at unit scale: ``f_* | s ~ N(loc, s * unit_var)``.

    Args:
        fit: From :func:`svtp_fit` (or an :class:`SVTPFit` with hand-set parameters).
        x_test: Test inputs, shape ``(m, d)``.

    Returns:
        ``(loc, unit_var)``, both of shape ``(m, C)``; with ``s ~ InvGamma(alpha, beta)``
            the latent predictive is Student-t, ``df = 2 alpha``, ``scale^2 = beta/alpha *
            unit_var`` (Gaussian process: ``N(loc, svtp_scale * unit_var)``).
    """
    return _unit_marginals(fit.svtp.settings, fit.params, jnp.asarray(x_test))


def svtp_class_probabilities(
    fit: SVTPFit,
    x_test: ArrayLike,
    *,
    rng_key: jax.Array,
    num_samples: int = 256,
    temperature: float | jax.Array = 1.0,
) -> jax.Array:
    """``p(y_* = k | x_*) = E_{q}[softmax(f_* / tau)_k]``, shape ``(m, C)``.

    The scale is integrated by quadrature (24 nodes, see the module notes), ``f_*``
    given the scale by Monte Carlo with ``num_samples`` draws.

    ``temperature`` ``tau`` is 1 for the model's own predictive; other values let it be
    compared with classifiers whose temperature is tuned on validation data.
    """
    with serial_blas():
        return jax.block_until_ready(
            fit.svtp.probabilities(
                fit.params, jnp.asarray(x_test), rng_key, num_samples, jnp.asarray(temperature)
            )
        )


def _class_probabilities(settings, params, x_test, rng_key, num_samples, temperature):
    loc, unit_var = _unit_marginals(settings, params, x_test)
    scales, weights = _scale_nodes(settings, params)
    eps = jax.random.normal(rng_key, (num_samples, *loc.shape), dtype=loc.dtype)

    def at_scale(s):
        logits = (loc + jnp.sqrt(s * unit_var) * eps) / temperature
        return jnp.mean(jax.nn.softmax(logits, axis=-1), axis=0)

    return jnp.tensordot(weights, jax.lax.map(at_scale, scales), axes=1)
