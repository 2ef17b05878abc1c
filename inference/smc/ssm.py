"""The state-space model contract shared by every SMC algorithm.

A state-space model with parameters ``theta`` (any pytree) is

.. math::

    X_0 \\sim m_\\theta(x_0), \\quad X_t \\mid X_{t-1} \\sim q_{\\theta,t}(x_{t-1}, x_t),
    \\quad Y_t \\mid X_t \\sim g_{\\theta,t}(x_t, y_t), \\qquad t = 0, \\dots, T-1.

It is written once as a :class:`StateSpaceModel` of pure functions acting on
**one** state (the algorithms ``vmap`` them over particles). A state is an
array of shape ``state_shape`` (``()`` for scalar states); observations are an
array of shape ``(T, *obs_shape)``. ``t`` is the integer time of the *new*
state. All functions must be traceable by JAX (no Python control flow on
values) and differentiable in ``theta`` where scores are needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = [
    "AuxiliaryLogweightFn",
    "Proposal",
    "StateSpaceModel",
    "check_observations",
    "check_positive",
]

#: Look-ahead of an auxiliary particle filter: ``(x_prev, y, t, theta) -> eta``,
#: a scalar approximating :math:`\\log p_\\theta(y_t \\mid x_{t-1})` (any finite
#: function is valid; the closer, the more uniform the second-stage weights).
AuxiliaryLogweightFn = Callable[[Array, Array, Array, Any], Array]


class StateSpaceModel(NamedTuple):
    """Pure functions defining a state-space model.

    Attributes:
        initial_sampler: ``(rng_key, theta) -> x0``, shape ``state_shape``.
        initial_logdensity: ``(x0, theta) -> log m_theta(x0)``, scalar.
        transition_sampler: ``(rng_key, x_prev, t, theta) -> x_t``.
        transition_logdensity: ``(x_prev, x, t, theta) -> log q_{theta,t}(x_prev, x)``.
        observation_logdensity: ``(x, y, t, theta) -> log g_{theta,t}(x, y)``.
        transition_logdensity_bound: Optional ``(t, theta) -> sup log q``, a
            bound on the transition log-density used by rejection-sampled
            backward draws in PaRIS; ``None`` if no such bound is known.
    """

    initial_sampler: Callable[[Array, Any], Array]
    initial_logdensity: Callable[[Array, Any], Array]
    transition_sampler: Callable[[Array, Array, Array, Any], Array]
    transition_logdensity: Callable[[Array, Array, Array, Any], Array]
    observation_logdensity: Callable[[Array, Array, Array, Any], Array]
    transition_logdensity_bound: Callable[[Array, Any], Array] | None = None


class Proposal(NamedTuple):
    """A proposal for guided particle filters (defaults to the model's dynamics).

    Attributes:
        initial_sampler: ``(rng_key, y0, theta) -> x0``.
        initial_logdensity: ``(x0, y0, theta) -> log p(x0)``.
        sampler: ``(rng_key, x_prev, y, t, theta) -> x_t``.
        logdensity: ``(x_prev, x, y, t, theta) -> log p(x_t | x_prev, y)``.
    """

    initial_sampler: Callable[[Array, Array, Any], Array]
    initial_logdensity: Callable[[Array, Array, Any], Array]
    sampler: Callable[[Array, Array, Array, Array, Any], Array]
    logdensity: Callable[[Array, Array, Array, Array, Any], Array]


def check_observations(observations: Any, *, min_length: int = 1) -> Array:
    """Validate observations ``(T, *obs_shape)`` and return them as a JAX array.

    Raises:
        ValueError: If the array has no time axis, is shorter than
            ``min_length`` or holds non-finite values (checked only on
            concrete inputs, not under tracing).
    """
    try:
        concrete = np.asarray(observations)
    except Exception:  # traced values cannot be inspected
        concrete = None
    if concrete is not None:
        if concrete.ndim == 0:
            raise ValueError("observations must have a leading time axis, got a scalar")
        if concrete.shape[0] < min_length:
            raise ValueError(
                f"observations must hold at least {min_length} time step(s), "
                f"got shape {concrete.shape}"
            )
        if not np.all(np.isfinite(concrete)):
            bad = int(np.argmax(~np.isfinite(concrete.reshape(concrete.shape[0], -1)).any(1)))
            raise ValueError(f"observations hold non-finite values (first at time {bad})")
    return jnp.asarray(observations)


def check_positive(name: str, value: Any, minimum: int = 1) -> int:
    """Validate an integer size such as ``num_particles`` (``>= minimum``)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
