"""Gaussian and Student-t process regression from a precomputed kernel.

Model (``c`` outputs sharing one scale ``s``, e.g. one-hot labels)::

    f_j ~ GP(0, s K),   Y[:, j] = f_j(X) + eps_j,   eps_j ~ N(0, s sigma^2 I),   j = 1..c.

The noise variance is scaled with the readout variance ``s`` (the conjugate
choice of Lee et al., 2022), so with ``A = K + sigma^2 I`` and
``Q = sum_j Y_j^T A^{-1} Y_j`` the likelihood of the scale is
``p(Y | s) = (2 pi s)^{-nc/2} |A|^{-c/2} exp(-Q / (2 s))``.

* Fixed ``s`` (the NNGP, Gaussian baseline): predictive ``N(mu, s v)`` with
  ``mu = K_*^T A^{-1} Y`` and ``v = k_** + sigma^2 - K_*^T A^{-1} K_*``.
* ``s ~ InverseGamma(a, b)``: the posterior is ``InverseGamma(a + nc/2, b + Q/2)``
  and the predictive of a test row is a multivariate Student t with
  ``2a + nc`` degrees of freedom, location ``mu`` and scale
  ``(b + Q/2) / (a + nc/2) * v * I_c``; the marginal likelihood is
  ``p(Y) = Gamma(a + nc/2) b^a / (Gamma(a) (b + Q/2)^{a + nc/2} (2 pi)^{nc/2} |A|^{c/2})``.

Everything goes through one Cholesky factor of ``A + jitter I``
(:func:`gp_fit`); the jitter is explicit and reported. Use float64
(``jax.enable_x64(True)``) for kernels beyond a few hundred points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import cho_solve, solve_triangular
from jax.scipy.special import gammaln

if TYPE_CHECKING:
    from jax.typing import ArrayLike

__all__ = [
    "GPFit",
    "StudentTPredictive",
    "gaussian_log_marginal_likelihood",
    "gaussian_log_predictive",
    "gaussian_predict",
    "gp_fit",
    "inverse_gamma_posterior",
    "student_t_log_marginal_likelihood",
    "student_t_log_predictive",
    "student_t_predict",
    "validate_targets",
]

_LOG_2PI = float(np.log(2 * np.pi))


class GPFit(NamedTuple):
    """Cholesky factorization of the training covariance and derived statistics.

    Attributes:
        chol: Lower Cholesky factor ``L`` of ``K + (sigma^2 + jitter) I``, shape ``(n, n)``.
        alpha: ``A^{-1} Y``, shape ``(n, c)``.
        quad: ``Q = sum_j Y_j^T A^{-1} Y_j``, shape ``()``.
        logdet: ``log |A|``, shape ``()``.
        noise_variance: ``sigma^2`` (relative to the scale ``s``), shape ``()``.
    """

    chol: jax.Array
    alpha: jax.Array
    quad: jax.Array
    logdet: jax.Array
    noise_variance: jax.Array

    @property
    def num_data(self) -> int:
        """Number of training points ``n``."""
        return self.alpha.shape[0]

    @property
    def num_outputs(self) -> int:
        """Number of outputs ``c``."""
        return self.alpha.shape[1]


class StudentTPredictive(NamedTuple):
    """Posterior predictive of the inverse-gamma scale mixture at test rows.

    Each test row ``y_*`` (``c`` outputs) is multivariate Student t with ``df``
    degrees of freedom, location ``loc`` and scale matrix ``scale2 * I_c``.

    Attributes:
        loc: Predictive location (and mean when ``df > 1``), shape ``(m, c)``.
        scale2: Squared scale per test row, shape ``(m,)``.
        df: Degrees of freedom ``2a + nc``, shape ``()``.
    """

    loc: jax.Array
    scale2: jax.Array
    df: jax.Array

    @property
    def variance(self) -> jax.Array:
        """Predictive variance of each output, ``scale2 * df / (df - 2)``, shape ``(m,)``."""
        return self.scale2 * self.df / (self.df - 2)


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def validate_targets(y: ArrayLike, num_data: int | None = None) -> jax.Array:
    """Targets as a ``(n, c)`` array; a vector becomes one column.

    Raises:
        ValueError: Wrong rank, wrong length, or NaN/infinite targets.
    """
    if _concrete(y):
        ya = np.asarray(y)
        if ya.ndim not in (1, 2):
            raise ValueError(f"targets must have shape (n,) or (n, c), got shape {ya.shape}")
        if not np.all(np.isfinite(ya)):
            raise ValueError("targets contain NaN or infinite values")
    y = jnp.asarray(y, dtype=jnp.result_type(float))
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"targets must have shape (n,) or (n, c), got shape {y.shape}")
    if num_data is not None and y.shape[0] != num_data:
        raise ValueError(f"targets have {y.shape[0]} rows but the kernel has {num_data}")
    return y


def _check_positive(name: str, value, allow_zero: bool = False) -> None:
    if _concrete(value):
        v = np.asarray(value)
        bad = not np.all(np.isfinite(v)) or (np.any(v < 0) if allow_zero else np.any(v <= 0))
        if bad:
            kind = "non-negative" if allow_zero else "positive"
            raise ValueError(f"{name} must be {kind} and finite, got {value!r}")


@jax.jit
def _factorize(k, y, noise, jitter):
    ridge = noise + jitter * jnp.mean(jnp.diag(k))
    # The ridge goes onto the diagonal in place rather than through an n x n identity,
    # and potrf reads the lower triangle only, so jnp.linalg.cholesky's symmetrizing
    # pass would be one more n x n sweep for nothing (at n = 5000 each is 200 MB).
    diag = jnp.arange(k.shape[0])
    chol = lax.linalg.cholesky(k.at[diag, diag].add(ridge), symmetrize_input=False)
    alpha = cho_solve((chol, True), y)
    logdet = 2 * jnp.sum(jnp.log(jnp.diag(chol)))
    return GPFit(chol, alpha, jnp.sum(y * alpha), logdet, noise)


def gp_fit(
    kernel_train: ArrayLike,
    y: ArrayLike,
    *,
    noise_variance: float | jax.Array,
    jitter: float = 1e-8,
) -> GPFit:
    """Factorize ``A = K + sigma^2 I`` once for predictions and marginal likelihoods.

    Args:
        kernel_train: ``K(X, X)``, shape ``(n, n)``; only its lower triangle is read.
        y: Targets, shape ``(n,)`` or ``(n, c)``.
        noise_variance: ``sigma^2 >= 0``; the observation noise is ``s sigma^2``.
        jitter: Added to the diagonal on top of ``sigma^2`` for numerical stability
            (relative to the mean diagonal of ``K``).

    Returns:
        The fit, as a :class:`GPFit`.

    Raises:
        ValueError: Non-square kernel, mismatched targets, NaN values, negative noise,
            or a covariance that is not positive definite even with the jitter.
    """
    k = jnp.asarray(kernel_train, dtype=jnp.result_type(float))
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"kernel_train must be square, got shape {k.shape}")
    if _concrete(k) and not bool(jnp.all(jnp.isfinite(k))):
        raise ValueError("kernel_train contains NaN or infinite values")
    y = validate_targets(y, k.shape[0])
    _check_positive("noise_variance", noise_variance, allow_zero=True)
    _check_positive("jitter", jitter, allow_zero=True)
    fit = _factorize(k, y, jnp.asarray(noise_variance, k.dtype), jnp.asarray(jitter, k.dtype))
    if _concrete(fit.chol) and not bool(jnp.all(jnp.isfinite(fit.chol))):
        raise ValueError(
            "K + noise_variance I is not positive definite at this precision: raise the "
            "jitter or the noise variance, or use float64 (jax.enable_x64(True))"
        )
    return fit


def gaussian_log_marginal_likelihood(fit: GPFit, *, scale: float | jax.Array = 1.0) -> jax.Array:
    """``log N(Y; 0, s A)`` summed over outputs, shape ``()``."""
    n, c = fit.num_data, fit.num_outputs
    return -0.5 * (n * c * (_LOG_2PI + jnp.log(scale)) + c * fit.logdet + fit.quad / scale)


def _latent_predict(fit: GPFit, kernel_cross, kernel_test_diag):
    kc = jnp.asarray(kernel_cross, fit.chol.dtype)
    if kc.ndim != 2 or kc.shape[0] != fit.num_data:
        raise ValueError(f"kernel_cross must have shape ({fit.num_data}, m), got shape {kc.shape}")
    kd = jnp.asarray(kernel_test_diag, fit.chol.dtype)
    if kd.shape != (kc.shape[1],):
        raise ValueError(f"kernel_test_diag must have shape ({kc.shape[1]},), got {kd.shape}")
    return _latent_core(fit, kc, kd)


@jax.jit
def _latent_core(fit, kc, kd):
    mean = kc.T @ fit.alpha
    w = solve_triangular(fit.chol, kc, lower=True)
    var = kd - jnp.sum(w * w, axis=0)
    return mean, jnp.maximum(var, 0.0)


def gaussian_predict(
    fit: GPFit,
    kernel_cross: ArrayLike,
    kernel_test_diag: ArrayLike,
    *,
    scale: float | jax.Array = 1.0,
    include_noise: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Gaussian (NNGP) posterior predictive with the scale ``s`` fixed.

    Args:
        fit: Output of :func:`gp_fit`.
        kernel_cross: ``K(X, X_*)``, shape ``(n, m)``.
        kernel_test_diag: ``k(x_*, x_*)``, shape ``(m,)``.
        scale: The readout scale ``s``.
        include_noise: Predict noisy targets (adds ``s sigma^2``) rather than ``f``.

    Returns:
        ``(mean, var)`` with shapes ``(m, c)`` and ``(m,)`` (the variance is shared by
            the outputs).
    """
    mean, var = _latent_predict(fit, kernel_cross, kernel_test_diag)
    if include_noise:
        var = var + fit.noise_variance
    return mean, scale * var


def gaussian_log_predictive(y_test: ArrayLike, mean: jax.Array, var: jax.Array) -> jax.Array:
    """Log density of each test row under ``N(mean, var I_c)``, shape ``(m,)``."""
    return _normal_logpdf(validate_targets(y_test, mean.shape[0]), mean, var)


@jax.jit
def _normal_logpdf(y, mean, var):
    r2 = jnp.sum((y - mean) ** 2, axis=1)
    return -0.5 * (y.shape[1] * (_LOG_2PI + jnp.log(var)) + r2 / var)


def inverse_gamma_posterior(
    fit: GPFit, *, concentration: float | jax.Array, rate: float | jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Posterior ``InverseGamma(a + nc/2, b + Q/2)`` of the scale; returns ``(a_n, b_n)``."""
    _check_positive("concentration", concentration)
    _check_positive("rate", rate)
    n, c = fit.num_data, fit.num_outputs
    return concentration + 0.5 * n * c, rate + 0.5 * fit.quad


def student_t_log_marginal_likelihood(
    fit: GPFit, *, concentration: float | jax.Array, rate: float | jax.Array
) -> jax.Array:
    """Log marginal likelihood of the inverse-gamma scale mixture, shape ``()``."""
    _check_positive("concentration", concentration)
    _check_positive("rate", rate)
    return _t_lml(fit, concentration, rate)


@jax.jit
def _t_lml(fit, a, b):
    n, c = fit.num_data, fit.num_outputs
    a_n, b_n = a + 0.5 * n * c, b + 0.5 * fit.quad
    return (
        gammaln(a_n)
        - gammaln(a)
        + a * jnp.log(b)
        - a_n * jnp.log(b_n)
        - 0.5 * n * c * _LOG_2PI
        - 0.5 * c * fit.logdet
    )


def student_t_predict(
    fit: GPFit,
    kernel_cross: ArrayLike,
    kernel_test_diag: ArrayLike,
    *,
    concentration: float | jax.Array,
    rate: float | jax.Array,
    include_noise: bool = True,
) -> StudentTPredictive:
    """Student-t process posterior predictive (inverse-gamma prior on the scale).

    Args:
        fit: Output of :func:`gp_fit`.
        kernel_cross: ``K(X, X_*)``, shape ``(n, m)``.
        kernel_test_diag: ``k(x_*, x_*)``, shape ``(m,)``.
        concentration: Prior shape ``a > 0``.
        rate: Prior rate ``b > 0``.
        include_noise: Predict noisy targets rather than ``f``.

    Returns:
        The predictive as a :class:`StudentTPredictive`, with ``df = 2 a_n`` and
            ``scale2 = (b_n / a_n) v``.
    """
    a_n, b_n = inverse_gamma_posterior(fit, concentration=concentration, rate=rate)
    mean, var = _latent_predict(fit, kernel_cross, kernel_test_diag)
    if include_noise:
        var = var + fit.noise_variance
    return StudentTPredictive(mean, (b_n / a_n) * var, 2 * a_n)


def student_t_log_predictive(y_test: ArrayLike, pred: StudentTPredictive) -> jax.Array:
    """Log density of each test row under its multivariate t predictive, shape ``(m,)``."""
    return _t_logpdf(validate_targets(y_test, pred.loc.shape[0]), pred)


@jax.jit
def _t_logpdf(y, pred):
    c = y.shape[1]
    nu = pred.df
    r2 = jnp.sum((y - pred.loc) ** 2, axis=1)
    return (
        gammaln(0.5 * (nu + c))
        - gammaln(0.5 * nu)
        - 0.5 * c * (jnp.log(nu * jnp.pi) + jnp.log(pred.scale2))
        - 0.5 * (nu + c) * jnp.log1p(r2 / (nu * pred.scale2))
    )
