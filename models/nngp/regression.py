"""NNGP regression with a scale prior: marginal-likelihood fitting and prediction.

Three families of the readout scale ``s`` (see :mod:`bayes.models.nngp.gp`):

* ``"gaussian"``: ``s`` fixed and fitted (the NNGP baseline);
* ``"inverse_gamma"``: ``s ~ InverseGamma(a, b)``, Student-t process in closed form;
* ``"burr_xii"``: ``s ~ BurrXII(c, k, lam)``, integrated by quadrature.

Hyperparameters live in a dict of unconstrained (log) values: the kernel's
``log_weight_variance``, ``log_bias_variance``, the relative noise
``log_noise_variance`` and the family's prior parameters. They are fitted by
maximizing the log marginal likelihood with optax's Adam inside one
``lax.scan`` (one compilation per family, depth and data shape).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .gp import (
    gaussian_log_marginal_likelihood,
    gaussian_log_predictive,
    gaussian_predict,
    gp_fit,
    student_t_log_marginal_likelihood,
    student_t_log_predictive,
    student_t_predict,
    validate_targets,
)
from .kernels import _check_params, kernel_diag, kernel_matrix, validate_inputs
from .scale_mixture import (
    BurrXII,
    mixture_log_predictive,
    mixture_predictive_variance,
    scale_posterior_quadrature,
)

if TYPE_CHECKING:
    from jax.typing import ArrayLike

__all__ = [
    "FAMILIES",
    "Predictive",
    "constrain",
    "fit_hyperparameters",
    "init_params",
    "log_marginal_likelihood",
    "predict",
]

FAMILIES = ("gaussian", "inverse_gamma", "burr_xii")
Family = Literal["gaussian", "inverse_gamma", "burr_xii"]

_PRIOR_DEFAULTS = {
    "gaussian": {"scale": 1.0},
    "inverse_gamma": {"concentration": 2.0, "rate": 1.0},
    "burr_xii": {"c": 2.0, "k": 1.0, "scale": 1.0},
}


class Predictive(NamedTuple):
    """Predictive distribution of test targets.

    Attributes:
        mean: Predictive mean, shape ``(m, c)``.
        variance: Predictive variance of each output (noise included), shape ``(m,)``.
        log_density: Log predictive density of each test row, shape ``(m,)`` (``None``
            when no test targets were given).
    """

    mean: jax.Array
    variance: jax.Array
    log_density: jax.Array | None


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")


def init_params(
    family: Family,
    *,
    weight_variance: float = 2.0,
    bias_variance: float = 0.1,
    noise_variance: float = 0.1,
    **prior: float,
) -> dict[str, jax.Array]:
    """Unconstrained starting point.

    Args:
        family: ``"gaussian"``, ``"inverse_gamma"`` or ``"burr_xii"``.
        weight_variance: ``sigma_w^2``.
        bias_variance: ``sigma_b^2`` (must be positive here: it is fitted in log space).
        noise_variance: Relative noise ``sigma^2``.
        **prior: Prior parameters overriding the defaults (``scale`` for the Gaussian
            family; ``concentration``, ``rate`` for the inverse gamma; ``c``, ``k``,
            ``scale`` for Burr XII).

    Returns:
        Dict of log values.
    """
    _check_family(family)
    values = dict(_PRIOR_DEFAULTS[family])
    unknown = set(prior) - set(values)
    if unknown:
        raise ValueError(f"unknown prior parameters for {family}: {sorted(unknown)}")
    values.update(prior)
    values.update(
        weight_variance=weight_variance, bias_variance=bias_variance, noise_variance=noise_variance
    )
    for name, v in values.items():
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be positive and finite, got {v!r}")
    return {f"log_{k}": jnp.log(jnp.asarray(v, jnp.result_type(float))) for k, v in values.items()}


def constrain(params: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Positive values from the log parameters (``log_x -> x``)."""
    return {k.removeprefix("log_"): jnp.exp(v) for k, v in params.items()}


def _kernel_kwargs(p, depth, activation):
    return dict(
        weight_variance=p["weight_variance"],
        bias_variance=p["bias_variance"],
        depth=depth,
        activation=activation,
    )


def _prior(family, p):
    if family == "burr_xii":
        return BurrXII(p["c"], p["k"], p["scale"])
    return None


def _lml(params, x, y, family, depth, activation, jitter):
    p = constrain(params)
    k = kernel_matrix(x, **_kernel_kwargs(p, depth, activation))
    fit = gp_fit(k, y, noise_variance=p["noise_variance"], jitter=jitter)
    if family == "gaussian":
        return gaussian_log_marginal_likelihood(fit, scale=p["scale"])
    if family == "inverse_gamma":
        return student_t_log_marginal_likelihood(
            fit, concentration=p["concentration"], rate=p["rate"]
        )
    return scale_posterior_quadrature(fit, _prior(family, p), num_points=401).log_evidence


def log_marginal_likelihood(
    params: dict[str, jax.Array],
    x: ArrayLike,
    y: ArrayLike,
    *,
    family: Family,
    depth: int = 1,
    activation: str = "relu",
    jitter: float = 1e-8,
) -> jax.Array:
    """Log marginal likelihood ``log p(Y | X, params)`` of the family, shape ``()``.

    Args:
        params: Log hyperparameters (see :func:`init_params`).
        x: Training inputs, shape ``(n, d)``.
        y: Training targets, shape ``(n,)`` or ``(n, c)``.
        family: ``"gaussian"``, ``"inverse_gamma"`` or ``"burr_xii"``.
        depth: Hidden layers of the network.
        activation: ``"relu"`` or ``"erf"``.
        jitter: Relative diagonal jitter.

    Returns:
        The log marginal likelihood (differentiable in ``params``).
    """
    _check_family(family)
    _check_params(1.0, 0.0, depth, activation)
    x, _ = validate_inputs(x)
    y = validate_targets(y, x.shape[0])
    return _lml_jit(params, x, y, family, depth, activation, jitter)


_lml_jit = jax.jit(_lml, static_argnames=("family", "depth", "activation"))


@partial(jax.jit, static_argnames=("family", "depth", "activation", "num_steps"))
def _optimize(params, x, y, learning_rate, jitter, family, depth, activation, num_steps):
    opt = optax.adam(learning_rate)

    def loss(p):
        return -_lml(p, x, y, family, depth, activation, jitter) / x.shape[0]

    def step(carry, _):
        p, state = carry
        value, grad = jax.value_and_grad(loss)(p)
        # a non-finite step (a Cholesky failure at an extreme point) is skipped
        ok = jnp.isfinite(value) & jax.tree.reduce(
            lambda a, g: a & jnp.all(jnp.isfinite(g)), grad, jnp.array(True)
        )
        updates, new_state = opt.update(grad, state, p)
        new_p = optax.apply_updates(p, updates)
        p = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_p, p)
        state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_state, state)
        return (p, state), value

    (params, _), history = jax.lax.scan(step, (params, opt.init(params)), None, length=num_steps)
    return params, history


def fit_hyperparameters(
    x: ArrayLike,
    y: ArrayLike,
    *,
    family: Family,
    depth: int = 1,
    activation: str = "relu",
    init: dict[str, jax.Array] | None = None,
    num_steps: int = 300,
    learning_rate: float = 0.05,
    jitter: float = 1e-8,
) -> tuple[dict[str, jax.Array], jax.Array]:
    """Maximize the log marginal likelihood with Adam.

    Args:
        x: Training inputs, shape ``(n, d)``.
        y: Training targets, shape ``(n,)`` or ``(n, c)``.
        family: ``"gaussian"``, ``"inverse_gamma"`` or ``"burr_xii"``.
        depth: Hidden layers.
        activation: ``"relu"`` or ``"erf"``.
        init: Starting log hyperparameters (default :func:`init_params`).
        num_steps: Adam steps.
        learning_rate: Adam learning rate.
        jitter: Relative diagonal jitter.

    Returns:
        ``(params, history)``: fitted log hyperparameters and the negative log marginal
            likelihood per data point at each step, shape ``(num_steps,)``.
    """
    _check_family(family)
    _check_params(1.0, 0.0, depth, activation)
    x, _ = validate_inputs(x)
    y = validate_targets(y, x.shape[0])
    params = init_params(family) if init is None else init
    return _optimize(params, x, y, learning_rate, jitter, family, depth, activation, num_steps)


def predict(
    params: dict[str, jax.Array],
    x: ArrayLike,
    y: ArrayLike,
    x_test: ArrayLike,
    y_test: ArrayLike | None = None,
    *,
    family: Family,
    depth: int = 1,
    activation: str = "relu",
    jitter: float = 1e-8,
    num_points: int = 2001,
) -> Predictive:
    """Posterior predictive at ``x_test`` (noisy targets).

    Args:
        params: Log hyperparameters.
        x: Training inputs, shape ``(n, d)``.
        y: Training targets, shape ``(n,)`` or ``(n, c)``.
        x_test: Test inputs, shape ``(m, d)``.
        y_test: Optional test targets, shape ``(m,)`` or ``(m, c)``, for log densities.
        family: ``"gaussian"``, ``"inverse_gamma"`` or ``"burr_xii"``.
        depth: Hidden layers.
        activation: ``"relu"`` or ``"erf"``.
        jitter: Relative diagonal jitter.
        num_points: Quadrature points for ``"burr_xii"``.

    Returns:
        The predictive distribution, as a :class:`Predictive`.
    """
    _check_family(family)
    x, x_test = validate_inputs(x, x_test)
    y = validate_targets(y, x.shape[0])
    p = constrain(params)
    kw = _kernel_kwargs(p, depth, activation)
    fit = gp_fit(kernel_matrix(x, **kw), y, noise_variance=p["noise_variance"], jitter=jitter)
    kc = kernel_matrix(x, x_test, **kw)
    kd = kernel_diag(x_test, **kw)
    if family == "inverse_gamma":
        pred = student_t_predict(fit, kc, kd, concentration=p["concentration"], rate=p["rate"])
        logd = None if y_test is None else student_t_log_predictive(y_test, pred)
        return Predictive(pred.loc, pred.variance, logd)
    mean, unit_var = gaussian_predict(fit, kc, kd)
    if family == "gaussian":
        var = p["scale"] * unit_var
        logd = None if y_test is None else gaussian_log_predictive(y_test, mean, var)
        return Predictive(mean, var, logd)
    post = scale_posterior_quadrature(fit, _prior(family, p), num_points=num_points)
    logd = None if y_test is None else mixture_log_predictive(y_test, mean, unit_var, post)
    return Predictive(mean, mixture_predictive_variance(unit_var, post), logd)
