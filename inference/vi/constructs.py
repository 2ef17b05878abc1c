"""Constructs for writing variational objectives as ordinary JAX programs.

An *objective program* is a function ``objective(model, guide, params, *args,
rng_key, **kwargs) -> scalar`` whose expectation over its randomness is the
objective to maximise (after Becker, Lew et al., PLDI 2024). It is written with:

- :func:`guide_draw`: run the guide (a NumPyro program) and return the values of
  its sites and ``log q`` of the draw. Each random choice is drawn with a
  per-site gradient estimator (:data:`ESTIMATORS`): ``"reparam"``
  (pathwise), ``"score"`` (REINFORCE), ``"enum"`` (exact sum over a finite
  support), ``"mvd"`` (measure-valued derivative of a finite discrete choice)
  or ``"detach"`` (no gradient through the choice).
- :func:`model_log_density`: ``log p(x, z)`` of the model at the guide's values.
- :func:`log_mean_exp` and :func:`normalized_weights`: importance-weighted
  marginalisation and self-normalisation over ``K`` particles.
- :func:`with_gradient_of`: report one number while differentiating another.

:func:`bayes.inference.vi.surrogate.expectation` then turns a program into a
surrogate whose gradient is an unbiased estimate of the gradient of its
expectation; this module keeps the bookkeeping it needs (score and enumeration
terms recorded while the program runs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from numpyro.handlers import seed
from numpyro.infer.util import compute_log_probs
from numpyro.primitives import Messenger

__all__ = [
    "ESTIMATORS",
    "GuideDraw",
    "guide_draw",
    "log_mean_exp",
    "model_log_density",
    "normalized_weights",
    "with_gradient_of",
]

#: Per-site gradient estimators understood by :func:`guide_draw`.
ESTIMATORS = ("reparam", "score", "enum", "mvd", "detach")


@dataclass
class _Scope:
    """Trace-time record of the terms an ``expectation`` needs (not a JAX value)."""

    enum_index: dict[str, jax.Array] | None = None
    mvd_override: tuple[str, jax.Array, jax.Array] | None = None
    sites: dict[str, tuple[str, int, tuple[int, ...]]] = field(default_factory=dict)
    score_terms: list[jax.Array] = field(default_factory=list)
    enum_terms: list[jax.Array] = field(default_factory=list)
    mvd_terms: list[jax.Array] = field(default_factory=list)


_SCOPES: list[_Scope] = []


class GuideDraw(NamedTuple):
    """One draw (or ``K`` particles) from a guide.

    Attributes:
        values: Site name -> value of every sample site of the guide (leading
            axis ``K`` when drawn with ``num_particles``).
        log_prob: ``log q`` of the draw, shape ``()`` or ``(K,)``; differentiable
            in the guide parameters.
        num_particles: ``None`` for a single draw, else ``K``.
    """

    values: dict[str, jax.Array]
    log_prob: jax.Array
    num_particles: int | None = None


class _EstimatorMessenger(Messenger):
    """Chooses how each guide sample site is drawn, according to its estimator."""

    def __init__(self, fn, estimators, default, enum_index, mvd_override, found):
        self.estimators = estimators
        self.default = default
        self.enum_index = enum_index
        self.mvd_override = mvd_override
        self.found = found
        self.mvd_log_prob = jnp.zeros(())
        super().__init__(fn)

    def _estimator(self, msg) -> str:
        name = msg["name"]
        est = self.estimators.get(name) or msg["infer"].get("estimator")
        if est is None:
            usable = msg["fn"].has_rsample or self.default == "detach"
            est = self.default if usable else "score"
        if est not in ESTIMATORS:
            raise ValueError(f"site {name!r}: unknown estimator {est!r}; use one of {ESTIMATORS}")
        if est == "reparam" and not msg["fn"].has_rsample:
            raise ValueError(
                f"site {name!r}: {type(msg['fn']).__name__} has no reparameterised sampler; "
                "choose the 'score' or 'enum' estimator for it"
            )
        return est

    def process_message(self, msg) -> None:
        if msg["type"] != "sample" or msg["is_observed"] or msg["value"] is not None:
            return
        est = self._estimator(msg)
        msg["infer"] = {**msg["infer"], "_vi_estimator": est}
        fn, name = msg["fn"], msg["name"]
        support = None
        if est in ("enum", "mvd"):
            if not fn.has_enumerate_support or fn.event_shape or msg["kwargs"]["sample_shape"]:
                raise ValueError(
                    f"site {name!r}: {est!r} needs a scalar discrete site with finite support"
                )
            support = fn.enumerate_support(expand=False)
            size = support.shape[0]
            support = support.reshape(size, -1)
            if support.shape[1] != 1:
                raise ValueError(f"site {name!r}: {est!r} needs the same support in every entry")
            self.found[name] = (est, size, tuple(fn.batch_shape))
            if est == "enum" and self.enum_index is not None and name in self.enum_index:
                msg["value"] = jnp.take(support[:, 0], self.enum_index[name])
                return
        if est in ("score", "enum", "mvd", "detach"):
            value = fn(rng_key=msg["kwargs"]["rng_key"], sample_shape=msg["kwargs"]["sample_shape"])
            msg["value"] = jax.lax.stop_gradient(value)
        if est == "mvd" and self.mvd_override is not None and self.mvd_override[0] == name:
            # Measure-valued derivative branch: entry `e` of the site set to support value `k`.
            _, e, k = self.mvd_override
            flat = msg["value"].reshape(-1).at[e].set(support[k, 0].astype(msg["value"].dtype))
            msg["value"] = flat.reshape(msg["value"].shape)
            self.mvd_log_prob = fn.log_prob(msg["value"]).reshape(-1)[e]


def _draw_once(guide, params, args, kwargs, rng_key, estimators, default, enum_index, mvd=None):
    found: dict[str, tuple[str, int, tuple[int, ...]]] = {}
    program = _EstimatorMessenger(seed(guide, rng_key), estimators, default, enum_index, mvd, found)
    log_probs, tr = compute_log_probs(program, args, kwargs, params)
    values, score, enum = {}, 0.0, 0.0
    for name, site in tr.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        values[name] = site["value"]
        est = site["infer"].get("_vi_estimator")
        if est == "score":
            score = score + log_probs[name]
        elif est == "enum":
            enum = enum + log_probs[name]
    total = sum(log_probs[n] for n in values) if values else jnp.zeros(())
    terms = (jnp.asarray(score), jnp.asarray(enum), program.mvd_log_prob)
    return values, jnp.asarray(total), terms, found


def guide_draw(
    guide: Callable,
    params: dict[str, Any],
    *args: Any,
    rng_key: jax.Array,
    num_particles: int | None = None,
    estimators: dict[str, str] | None = None,
    default_estimator: str = "reparam",
    **kwargs: Any,
) -> GuideDraw:
    """Draw from a NumPyro guide with a gradient estimator per random choice.

    The estimator of a site is, in order of precedence: ``estimators[name]``,
    the site's ``infer={"estimator": ...}``, then ``default_estimator`` for
    sites with a reparameterised sampler and ``"score"`` for the others. Inside
    an ``expectation``, score sites add ``log q(z_site)`` to its score term,
    enumerated sites are summed over exactly, and measure-valued sites get
    their derivative from re-runs with each entry set to each support value.

    Args:
        guide: NumPyro program; its ``numpyro.param`` sites take values from ``params``.
        params: Parameter values by site name (constrained space).
        *args: Positional arguments of the guide.
        rng_key: PRNG key.
        num_particles: Draw ``K`` independent particles (values get a leading
            axis ``K``); enumeration is not available across particles.
        estimators: Site name -> one of :data:`ESTIMATORS`.
        default_estimator: Estimator of reparameterisable sites without a choice
            (``"detach"`` detaches every site, as reweighted wake-sleep needs).
        **kwargs: Keyword arguments of the guide.

    Returns:
        The draw, as a :class:`GuideDraw` with the values and ``log q``, shape ``()`` or
            ``(K,)``.
    """
    estimators = dict(estimators or {})
    scope = _SCOPES[-1] if _SCOPES else None
    if num_particles is None:
        enum_index = scope.enum_index if scope is not None else None
        mvd = scope.mvd_override if scope is not None else None
        values, log_q, (score, enum, mvd_lp), found = _draw_once(
            guide, params, args, kwargs, rng_key, estimators, default_estimator, enum_index, mvd
        )
    else:
        keys = jax.random.split(rng_key, num_particles)
        found = {}

        def one(key):
            values, log_q, terms, seen = _draw_once(
                guide, params, args, kwargs, key, estimators, default_estimator, None
            )
            found.update(seen)
            return values, log_q, terms[0]

        values, log_q, score = jax.vmap(one)(keys)
        if found:
            raise ValueError(
                f"sites {sorted(found)} use 'enum' or 'mvd', which are not available with "
                "num_particles; draw particles in a loop of single draws or use another estimator"
            )
        score, enum, mvd_lp = score.sum(), jnp.zeros(()), jnp.zeros(())
    if scope is not None:
        scope.sites.update(found)
        scope.score_terms.append(score)
        scope.enum_terms.append(enum)
        scope.mvd_terms.append(mvd_lp)
    return GuideDraw(values, log_q, num_particles)


def _model_log_density_once(model, values, params, args, kwargs):
    substituted = {**params, **values}
    try:
        # Unseeded: a seed handler would split keys at every plate, costing each step.
        log_probs, _ = compute_log_probs(model, args, kwargs, substituted)
    except Exception:
        _, tr = compute_log_probs(seed(model, 0), args, kwargs, substituted)
        missing = [
            name
            for name, site in tr.items()
            if site["type"] == "sample" and not site["is_observed"] and name not in substituted
        ]
        if missing:
            raise ValueError(f"model latent sites {missing} get no value from the guide") from None
        raise
    return sum(log_probs.values(), start=jnp.zeros(()))


def model_log_density(
    model: Callable,
    draw: GuideDraw | dict[str, jax.Array],
    params: dict[str, Any],
    *args: Any,
    **kwargs: Any,
) -> jax.Array:
    """``log p(x, z)`` of a NumPyro model at the values of a guide draw.

    Args:
        model: NumPyro program; observed sites carry the data.
        draw: A :class:`GuideDraw` (particles are vectorised over) or a dict of values.
        params: Parameter values; the model's own ``numpyro.param`` sites read them.
        *args: Positional arguments of the model.
        **kwargs: Keyword arguments of the model.

    Returns:
        Log joint density, shape ``()`` or ``(K,)`` for ``K`` particles.

    Raises:
        ValueError: If a latent site of the model has no value in the draw.
    """
    if isinstance(draw, GuideDraw):
        if draw.num_particles is not None:
            return jax.vmap(lambda v: _model_log_density_once(model, v, params, args, kwargs))(
                draw.values
            )
        draw = draw.values
    return _model_log_density_once(model, draw, params, args, kwargs)


def log_mean_exp(log_weights: jax.Array, axis: int = 0) -> jax.Array:
    r"""Importance-weighted marginalisation :math:`\log \frac1K \sum_k e^{\ell_k}`.

    Args:
        log_weights: Log importance weights, shape ``(K, ...)`` along ``axis``.
        axis: Particle axis.

    Returns:
        The log of the average weight, the particle axis removed.
    """
    k = log_weights.shape[axis]
    return jax.nn.logsumexp(log_weights, axis=axis) - jnp.log(k)


def normalized_weights(
    log_weights: jax.Array, axis: int = 0, stop_gradient: bool = True
) -> jax.Array:
    r"""Self-normalised importance weights :math:`\bar w_k = w_k / \sum_j w_j`.

    Args:
        log_weights: Shape ``(K, ...)``.
        axis: Particle axis.
        stop_gradient: Treat the weights as constants (as wake-sleep updates do).

    Returns:
        Weights of the same shape, summing to one along ``axis``.
    """
    w = jax.nn.softmax(log_weights, axis=axis)
    return jax.lax.stop_gradient(w) if stop_gradient else w


def with_gradient_of(value: jax.Array, surrogate: jax.Array) -> jax.Array:
    """A number equal to ``value`` whose gradient is the gradient of ``surrogate``.

    Lets an objective report a meaningful quantity (for example a log-evidence
    estimate) while its update follows another direction (wake-sleep, score climbing).
    """
    sg = jax.lax.stop_gradient
    return sg(value) + surrogate - sg(surrogate)
