r"""From an objective program to an unbiased gradient estimator.

For a program :math:`f` drawing random choices :math:`z` from the guide
:math:`q_\phi`, :func:`expectation` returns a *surrogate* :math:`s` with the
same value as the sample :math:`f(z)` and

.. math::

    \mathbb E[\nabla_\phi s] = \nabla_\phi \mathbb E_{q_\phi}[f(z)].

Reparameterised choices contribute through the pathwise derivative of
:math:`f`. Score-function choices contribute
:math:`(f - b)\,\nabla_\phi \log q_\phi(z_{\text{score}})` (a "magic box"
:math:`e^{S - \bot S}` with :math:`\bot` the stop-gradient), where the
baseline :math:`b` is a control variate that keeps the estimate unbiased and
lowers its variance. Enumerated choices are summed over exactly: the program
is re-run for every joint value :math:`k` of the enumerated sites and
:math:`s = \sum_k q_\phi(k)\, s_k`. Measure-valued choices (finite discrete)
add :math:`\sum_{e,k} \nabla q_\phi(z_e = k)\, f(z_e = k)`, re-running the program
once per entry and support value (linear, not exponential, in the number of entries).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .constructs import _SCOPES, _Scope

__all__ = [
    "Baseline",
    "StatefulObjective",
    "Surrogate",
    "expectation",
    "learned_baseline",
    "running_mean_baseline",
    "surrogate",
]

#: Largest joint support :func:`expectation` enumerates.
MAX_ENUM_SIZE = 65536


class Baseline(NamedTuple):
    """A control variate for the score-function estimator.

    Attributes:
        init: ``init() -> state`` (a pytree carried between steps).
        value: ``value(state, params, args, kwargs) -> b`` (scalar).
        update: ``update(state, f) -> state`` after observing the objective sample ``f``.
        params: Initial trainable parameters (``None`` if none); trained through
            ``params["_baseline"]`` by least squares on ``f``.
    """

    init: Callable[[], Any]
    value: Callable[..., jax.Array]
    update: Callable[[Any, jax.Array], Any]
    params: Any = None


def running_mean_baseline(decay: float = 0.9) -> Baseline:
    r"""Exponential moving average of the objective samples (bias-corrected).

    :math:`m_t = \rho m_{t-1} + (1-\rho) f_t`, :math:`b_t = m_t / (1-\rho^t)`;
    ``b`` is computed before the current sample, so it stays independent of it.

    Args:
        decay: :math:`\rho \in [0, 1)`.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must lie in [0, 1), got {decay}")

    def init():
        return (jnp.zeros(()), jnp.zeros(()))

    def value(state, params, args, kwargs):
        mean, count = state
        return jnp.where(count > 0, mean / (1.0 - decay ** jnp.maximum(count, 1.0)), 0.0)

    def update(state, f):
        mean, count = state
        return (decay * mean + (1.0 - decay) * jax.lax.stop_gradient(f), count + 1.0)

    return Baseline(init, value, update)


def learned_baseline(fn: Callable[..., jax.Array], init_params: Any) -> Baseline:
    """A baseline ``b = fn(theta_b, *args, **kwargs)`` learned by least squares.

    Its parameters live in ``params["_baseline"]``; the surrogate adds
    ``-(f - b)^2 / 2`` (``f`` held constant) so the same optimiser fits them.
    Because ``b`` does not depend on the current draw, the estimate stays unbiased.

    Args:
        fn: ``fn(theta_b, *args, **kwargs) -> scalar`` (may depend on the data,
            e.g. an amortised baseline network).
        init_params: Initial ``theta_b`` (a pytree).
    """

    def value(state, params, args, kwargs):
        return fn(params["_baseline"], *args, **kwargs)

    return Baseline(lambda: (), value, lambda state, f: state, init_params)


class StatefulObjective(NamedTuple):
    """An objective program that carries state between steps (e.g. a Markov chain).

    Attributes:
        init: ``init(model, guide, params, *args, rng_key, **kwargs) -> state``.
        program: ``program(model, guide, params, state, *args, rng_key, **kwargs)
            -> (value, new_state)``.
    """

    init: Callable[..., Any]
    program: Callable[..., tuple[jax.Array, Any]]


def _run_branch(program: Callable, call_args: tuple, call_kwargs: dict, enum_index=None, mvd=None):
    scope = _Scope(enum_index=enum_index, mvd_override=mvd)
    _SCOPES.append(scope)
    try:
        out = program(*call_args, **call_kwargs)
    finally:
        _SCOPES.pop()
    value, extra = out if isinstance(out, tuple) else (out, None)
    value = jnp.asarray(value)
    if value.shape != ():
        raise ValueError(f"an objective program must return a scalar, got shape {value.shape}")
    terms = [sum(t, start=jnp.zeros(())) for t in (scope.score_terms, scope.enum_terms)]
    mvd_lp = sum(scope.mvd_terms, start=jnp.zeros(()))
    return value, extra, (*terms, mvd_lp), scope.sites


def _enum_grid(sites: dict[str, tuple[int, tuple[int, ...]]]) -> dict[str, np.ndarray]:
    names = sorted(sites)
    sizes, shapes = [], []
    for name in names:
        size, shape = sites[name]
        n = int(np.prod(shape, dtype=int))
        sizes += [size] * n
        shapes.append((n, shape))
    total = int(np.prod(sizes, dtype=float))
    if total > MAX_ENUM_SIZE:
        raise ValueError(
            f"enumerating sites {names} needs {total} joint values (limit {MAX_ENUM_SIZE}); "
            "use the 'score' estimator for some of them"
        )
    flat = np.stack(np.unravel_index(np.arange(total), sizes), axis=-1) if sizes else None
    grid, col = {}, 0
    for name, (n, shape) in zip(names, shapes):
        grid[name] = flat[:, col : col + n].reshape((total, *shape))
        col += n
    return grid


def _estimate(program, call_args, call_kwargs, baseline_value):
    sg = jax.lax.stop_gradient
    value, extra, (score, _, _), sites = _run_branch(program, call_args, call_kwargs)
    enum = {n: (size, shape) for n, (kind, size, shape) in sites.items() if kind == "enum"}
    mvd = {n: (size, shape) for n, (kind, size, shape) in sites.items() if kind == "mvd"}
    if sites and extra is not None:
        raise ValueError("'enum' and 'mvd' sites cannot be combined with a stateful objective")
    if enum and mvd:
        raise ValueError(f"sites {sorted(enum)} use 'enum' and {sorted(mvd)} 'mvd': pick one")
    if not enum:
        surr = value + sg(value - baseline_value) * (score - sg(score))
        for name, (size, shape) in mvd.items():
            surr = surr + _mvd_term(program, call_args, call_kwargs, name, size, shape)
        return value, surr, extra
    grid = _enum_grid(enum)

    def branch(index):
        v, _, (s, e, _), _ = _run_branch(program, call_args, call_kwargs, enum_index=index)
        return v, v + sg(v - baseline_value) * (s - sg(s)), e

    values, surrs, log_q = jax.vmap(branch)({k: jnp.asarray(v) for k, v in grid.items()})
    weights = jnp.exp(log_q)
    return jnp.sum(sg(weights) * values), jnp.sum(weights * surrs), None


def _mvd_term(program, call_args, call_kwargs, name, size, shape):
    r"""Measure-valued derivative of one discrete site: zero in value, gradient
    :math:`\sum_{e,k} \nabla q_e(k)\, f(z_e = k)` with the program re-run for every
    entry ``e`` and support value ``k`` (other choices as in the main run)."""
    sg = jax.lax.stop_gradient
    n = int(np.prod(shape, dtype=int))
    entries = jnp.asarray(np.repeat(np.arange(n), size))
    values = jnp.asarray(np.tile(np.arange(size), n))

    def branch(e, k):
        v, _, (_, _, lp), _ = _run_branch(program, call_args, call_kwargs, mvd=(name, e, k))
        return v, lp

    f, log_q = jax.vmap(branch)(entries, values)
    term = jnp.sum(jnp.exp(log_q) * sg(f))
    return term - sg(term)


def expectation(program: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """Mark a program's expected value as the quantity to differentiate.

    Args:
        program: Any function whose random choices come from :func:`guide_draw`
            and which returns a scalar sample ``f``.

    Returns:
        A function with the same signature returning a surrogate equal in
            value to ``f`` (to the exact expectation over enumerated sites) whose
            gradient is an unbiased estimate of the gradient of ``E[f]``. It may be
            nested inside another program, e.g. averaged over data.
    """

    def estimated(*args, **kwargs):
        return _estimate(program, args, kwargs, jnp.zeros(()))[1]

    return estimated


class Surrogate(NamedTuple):
    """Objective program bound to a model and a guide, ready for gradients.

    Attributes:
        init: ``init(params, *args, rng_key, **kwargs) -> state``.
        loss: ``loss(params, state, *args, rng_key, **kwargs) -> (s, (value, state))``:
            ``grad(s)`` is an unbiased estimate of the gradient of the objective
            (to maximise); ``value`` is the objective sample, ``state`` the next state.
    """

    init: Callable[..., Any]
    loss: Callable[..., tuple[jax.Array, tuple[jax.Array, Any]]]


def surrogate(
    objective: Callable[..., jax.Array] | StatefulObjective,
    model: Callable,
    guide: Callable,
    *,
    baseline: Baseline | None = None,
) -> Surrogate:
    """Turn an objective program into a surrogate loss (the ADEV transformation).

    Args:
        objective: ``objective(model, guide, params, *args, rng_key, **kwargs)``
            returning a scalar sample, or a :class:`StatefulObjective`.
        model: NumPyro model.
        guide: NumPyro guide.
        baseline: Control variate for score-function sites (default none).

    Returns:
        The surrogate, as a :class:`Surrogate`; maximise ``s`` (or minimise ``-s``).
    """
    stateful = isinstance(objective, StatefulObjective)

    def init(params, *args, rng_key, **kwargs):
        obj_state = (
            objective.init(model, guide, params, *args, rng_key=rng_key, **kwargs)
            if stateful
            else None
        )
        return (baseline.init() if baseline is not None else None, obj_state)

    def loss(params, state, *args, rng_key, **kwargs):
        base_state, obj_state = state
        b = jnp.zeros(())
        if baseline is not None:
            b = jnp.asarray(baseline.value(base_state, params, args, kwargs))
        if stateful:
            prog = objective.program
            call_args = (model, guide, params, obj_state, *args)
        else:
            prog = objective
            call_args = (model, guide, params, *args)
        value, surr, new_obj = _estimate(
            prog, call_args, {"rng_key": rng_key, **kwargs}, jax.lax.stop_gradient(b)
        )
        new_base = base_state
        if baseline is not None:
            new_base = baseline.update(base_state, value)
            if baseline.params is not None:
                surr = surr - 0.5 * (jax.lax.stop_gradient(value) - b) ** 2
        return surr, (value, (new_base, new_obj))

    return Surrogate(init, loss)
