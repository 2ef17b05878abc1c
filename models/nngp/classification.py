"""Classification by regression on one-hot labels (Gaussian or Student-t process).

The ``C`` outputs are fitted to centred one-hot targets ``Y = onehot - 1/C``
with a shared readout scale (see :mod:`bayes.models.nngp.gp`). Class
probabilities average a tempered softmax over the predictive of the outputs:

.. math::

    p(y = k \\mid x_*) = \\mathbb E_{s, \\epsilon}\\left[\\mathrm{softmax}
        \\left(\\frac{\\mu_* + \\sqrt{s v_*}\\, \\epsilon}{\\tau}\\right)_k\\right],

with ``s`` fixed (NNGP) or drawn from its posterior (Student-t process:
``s ~ InverseGamma(a_n, b_n)`` independently for each test row). The
temperature ``tau`` is chosen on held-out data. Heavier-tailed predictive
outputs flatten the probabilities where the unit variance ``v_*`` is large,
e.g. far from the training inputs.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    from jax.typing import ArrayLike

__all__ = [
    "class_probabilities",
    "expected_calibration_error",
    "inverse_gamma_scale_draws",
    "one_hot_targets",
]


def one_hot_targets(labels: ArrayLike, num_classes: int) -> np.ndarray:
    """Centred one-hot targets ``onehot - 1/C``, shape ``(n, C)``.

    Raises:
        ValueError: Labels outside ``0..C-1`` or not integers.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("labels must be a 1-D integer array")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    return np.eye(num_classes)[labels] - 1.0 / num_classes


def inverse_gamma_scale_draws(
    a_n: float | jax.Array,
    b_n: float | jax.Array,
    *,
    rng_key: jax.Array,
    num_samples: int,
    num_rows: int,
) -> jax.Array:
    """Draws of ``s ~ InverseGamma(a_n, b_n)``, shape ``(num_samples, num_rows)``."""
    g = jax.random.gamma(rng_key, a_n, (num_samples, num_rows))
    return b_n / g


@jax.jit
def _probabilities(mean, unit_var, scales, rng_key, temperature):
    eps = jax.random.normal(rng_key, scales.shape + mean.shape[-1:], dtype=mean.dtype)
    logits = mean[None] + jnp.sqrt(scales * unit_var[None])[..., None] * eps
    return jnp.mean(jax.nn.softmax(logits / temperature, axis=-1), axis=0)


def class_probabilities(
    mean: jax.Array,
    unit_var: jax.Array,
    scales: ArrayLike,
    *,
    rng_key: jax.Array,
    temperature: float | jax.Array = 1.0,
) -> jax.Array:
    """Monte Carlo class probabilities of the one-hot regression classifier.

    Args:
        mean: Predictive location of the outputs, shape ``(m, C)``.
        unit_var: Predictive variance at unit scale, shape ``(m,)``.
        scales: Scale draws, shape ``(S, m)`` (a constant array for the NNGP).
        rng_key: PRNG key for the output noise.
        temperature: Softmax temperature ``tau > 0``.

    Returns:
        Probabilities, shape ``(m, C)``.
    """
    if np.ndim(scales) != 2 or np.shape(scales)[1] != np.shape(mean)[0]:
        raise ValueError(f"scales must have shape (S, {np.shape(mean)[0]}), got {np.shape(scales)}")
    return _probabilities(mean, unit_var, jnp.asarray(scales, mean.dtype), rng_key, temperature)


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, num_bins: int = 10) -> float:
    """Expected calibration error of the top-class probability (equal-width bins)."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, num_bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(ece)
