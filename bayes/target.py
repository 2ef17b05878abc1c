"""Sampling targets: everything a sampler needs from a NumPyro model or a log-density.

A target is built once per call of :func:`bayes.sample` (or of the SMC and VI
front ends) and has two halves:

- :class:`TargetSpec`, the *static* half: the model (or log-density) function
  and the data values that must be Python constants (integers used as sizes,
  strings, ``None``). It is hashable, so ``jax.jit`` can take it as a static
  argument and re-use the compiled program when the same model is sampled
  again with data of the same shapes.
- :class:`Target`, which adds the *dynamic* data (arrays and floats, traced
  as arguments rather than baked into the program), the layout of the
  unconstrained position and the observed data.

For a NumPyro model the log-density is the model's joint log-density over the
unconstrained parameters, Jacobians of the support transforms included,

.. math::

    \\log \\pi(z) = \\log p(T(z), y) + \\log |\\det J_T(z)|,

computed with ``numpyro.infer.util.potential_energy``; draws map back to the
constrained space (deterministic sites included) with
``numpyro.infer.util.constrain_fn``. A plain JAX log-density over a pytree is
used as is, with ``initial_position`` giving the layout.

Example:
    >>> target = as_target(model, {"y": y})  # doctest: +SKIP
    >>> z0 = target.init_positions(rng_key=key, num_chains=4)  # (4, ...) leaves
    >>> target.logdensity_fn(jax.tree.map(lambda x: x[0], z0))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DataError",
    "InitializationError",
    "Target",
    "TargetSpec",
    "as_target",
    "check_data",
    "split_data",
]

from bayes._modeldata import DataError, check_data, split_data

PyTree = Any


class InitializationError(ValueError):
    """No initial point with a finite log-density (and gradient) was found."""


def _named(position: PyTree) -> dict[str, Any]:
    """Name the leaves of a plain log-density's position for the posterior group."""
    if isinstance(position, Mapping):
        return dict(position)
    leaves = jax.tree.leaves(position)
    if len(leaves) == 1 and not isinstance(position, list | tuple):
        return {"theta": leaves[0]}
    return {f"theta_{i}": leaf for i, leaf in enumerate(leaves)}


@dataclass(frozen=True)
class TargetSpec:
    """Static, hashable half of a target (usable as a ``jax.jit`` static argument).

    Attributes:
        fn: The NumPyro model or the log-density function.
        kind: ``"numpyro"`` or ``"logdensity"``.
        static_data: Sorted ``(name, value)`` pairs of constant model arguments.
    """

    fn: Callable
    kind: str
    static_data: tuple[tuple[str, Any], ...] = ()

    def kwargs(self, data: Mapping[str, Any] | None) -> dict[str, Any]:
        """All keyword arguments of the model: static constants plus ``data``."""
        return {**dict(self.static_data), **(data or {})}

    def logdensity(self, position: PyTree, data: Mapping[str, Any] | None) -> jax.Array:
        """Log-density at an unconstrained ``position`` (scalar), Jacobians included.

        A call of one jitted function: JAX caches its trace by ``self`` and the
        argument shapes, so the model is traced once per process, however
        many programs (initial points, warmup and sampling chunks, ChEES)
        use it, instead of once or more per program.
        """
        return _logdensity(self, position, data)

    def constrain(self, position: PyTree, data: Mapping[str, Any] | None) -> dict[str, Any]:
        """Constrained values of one position, deterministic sites included."""
        if self.kind == "logdensity":
            return _named(position)
        from numpyro.infer.util import constrain_fn

        return constrain_fn(self.fn, (), self.kwargs(data), position, return_deterministic=True)

    def log_likelihood(
        self, constrained: Mapping[str, Any], data: Mapping[str, Any] | None, names: tuple
    ) -> dict[str, Any]:
        """Pointwise log-likelihood of the observed sites ``names`` at one draw."""
        if self.kind == "logdensity" or not names:
            return {}
        from numpyro.handlers import substitute, trace

        model_trace = trace(substitute(self.fn, dict(constrained))).get_trace(**self.kwargs(data))
        return {n: model_trace[n]["fn"].log_prob(model_trace[n]["value"]) for n in names}


@partial(jax.jit, static_argnums=0)
def _logdensity(spec: TargetSpec, position: PyTree, data: Mapping[str, Any] | None) -> jax.Array:
    if spec.kind == "logdensity":
        return jnp.asarray(spec.fn(position, **spec.kwargs(data)))
    from numpyro.infer.util import potential_energy

    return -potential_energy(spec.fn, (), spec.kwargs(data), position)


def _initial_points(
    spec: TargetSpec,
    data: dict,
    center: PyTree,
    rng_key: jax.Array,
    radius: float,
    *,
    num_chains: int,
    max_tries: int,
    per_chain: bool = False,
):
    if per_chain:  # one center per chain: leaves (num_chains, ...)
        centers = jax.vmap(lambda c: jax.flatten_util.ravel_pytree(c)[0])(center)
        _, unravel = jax.flatten_util.ravel_pytree(jax.tree.map(lambda x: x[0], center))
    else:
        flat_center, unravel = jax.flatten_util.ravel_pytree(center)
        centers = jnp.broadcast_to(flat_center, (num_chains, *flat_center.shape))

    def evaluate(flat):
        value, grad = jax.value_and_grad(lambda f: spec.logdensity(unravel(f), data))(flat)
        return value, grad, jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))

    def one_chain(key, flat_center):
        def propose(key):
            u = jax.random.uniform(key, flat_center.shape, flat_center.dtype, -radius, radius)
            return flat_center + u

        def cond(carry):
            return (~carry[-1]) & (carry[1] < max_tries)

        def body(carry):
            key, tries = carry[0], carry[1]
            key, sub = jax.random.split(key)
            flat = propose(sub)
            return key, tries + 1, flat, *evaluate(flat)

        key, sub = jax.random.split(key)
        flat = propose(sub)
        carry = jax.lax.while_loop(cond, body, (key, 1, flat, *evaluate(flat)))
        _, _, flat, value, grad, ok = carry
        return unravel(flat), value, unravel(grad), ok

    return jax.vmap(one_chain)(jax.random.split(rng_key, num_chains), centers)


@partial(jax.jit, static_argnames=("spec", "observed_names"))
def _postprocess(spec: TargetSpec, data: dict, positions: PyTree, observed_names: tuple):
    def one(position):
        constrained = spec.constrain(position, data)
        return constrained, spec.log_likelihood(constrained, data, observed_names)

    return (*jax.vmap(jax.vmap(one))(positions), _observed(spec, data, observed_names))


@dataclass
class Target:
    """A sampling target: the static spec, the traced data and the parameter layout.

    Attributes:
        spec: The hashable :class:`TargetSpec`.
        data: Traced model data (JAX arrays), passed as arguments to compiled code.
        example_position: One unconstrained position (a pytree of arrays) giving
            the layout; for a NumPyro model, a dict of site name to array.
        observed_names: Names of the observed sample sites (NumPyro models).
        center: Pytree around which initial points are drawn.
        radius: Half-width of the uniform box of initial points around ``center``.
        center_per_chain: ``center`` has a leading chain axis (one center per chain).
    """

    spec: TargetSpec
    data: dict[str, jax.Array]
    example_position: PyTree
    observed_names: tuple[str, ...] = ()
    center: PyTree = None
    radius: float = 2.0
    center_per_chain: bool = False
    _observed: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def logdensity_fn(self) -> Callable[[PyTree], jax.Array]:
        """``logdensity_fn(position) -> scalar`` with the data bound."""
        return partial(self.spec.logdensity, data=self.data)

    @property
    def num_dimensions(self) -> int:
        """Number of unconstrained scalar parameters."""
        return sum(math.prod(np.shape(x)) for x in jax.tree.leaves(self.example_position))

    @property
    def observed_data(self) -> dict[str, np.ndarray]:
        """Observed values by site name (NumPy arrays); empty for a log-density."""
        if self._observed is None:
            values = (
                _observed(self.spec, self.data, self.observed_names) if self.observed_names else {}
            )
            self._observed = {n: np.asarray(v) for n, v in values.items()}
        return self._observed

    def logdensity(self, position: PyTree, data: Mapping[str, Any] | None = None) -> jax.Array:
        """Log-density at ``position``; ``data`` defaults to the target's data."""
        return self.spec.logdensity(position, self.data if data is None else data)

    def constrain_fn(self, position: PyTree) -> dict[str, Any]:
        """Constrained values (deterministic sites included) of one unconstrained position."""
        return self.spec.constrain(position, self.data)

    def log_likelihood_fn(self, position: PyTree) -> dict[str, Any]:
        """Pointwise log-likelihood of each observed site at one unconstrained position."""
        constrained = self.spec.constrain(position, self.data)
        return self.spec.log_likelihood(constrained, self.data, self.observed_names)

    def initial_points(
        self, *, rng_key: jax.Array, num_chains: int, max_tries: int = 100
    ) -> tuple[PyTree, jax.Array, PyTree]:
        """Initial unconstrained positions with their log-density and gradient.

        Each chain draws uniformly in ``center ± radius`` (for a NumPyro model,
        ``(-2, 2)`` on the unconstrained scale, like Stan) until the
        log-density and its gradient are finite, at most ``max_tries`` times.

        Args:
            rng_key: PRNG key.
            num_chains: Number of chains.
            max_tries: Draws per chain before giving up.

        Returns:
            ``(positions, logdensity, grad)``: pytrees like ``example_position``
                with leaves of shape ``(num_chains, ...)``, and log-densities of
                shape ``(num_chains,)``.

        Raises:
            InitializationError: Some chain found no finite point.
            ValueError: Per-chain centers for another number of chains.
        """
        return self._initial_points(rng_key, num_chains, max_tries)[0]

    def _initial_points(
        self, rng_key: jax.Array, num_chains: int, max_tries: int = 100
    ) -> tuple[tuple[PyTree, jax.Array, PyTree], float]:
        """:meth:`initial_points` and the seconds spent building its program (0 if built)."""
        from bayes.sampling import _compile

        spec, per_chain = self.spec, self.center_per_chain
        if per_chain:
            given = jax.tree.leaves(self.center)[0].shape[0]
            if given != num_chains:
                raise ValueError(
                    f"initial_positions has {given} chains along its leading axis, "
                    f"but num_chains is {num_chains}"
                )

        def build():
            return partial(_initial_points, spec, num_chains=num_chains, max_tries=max_tries,
                           per_chain=per_chain)  # fmt: skip

        args = (self.data, self.center, rng_key, np.asarray(self.radius, jnp.result_type(float)))
        key = (spec, num_chains, max_tries, per_chain)
        program, compile_s = _compile("initial_points", key, build, *args, target=self)
        positions, value, grad, ok = program(*args)
        ok = np.asarray(ok)
        if not ok.all():
            raise InitializationError(
                f"the log-density (or its gradient) is not finite at any of the {max_tries} "
                f"initial points tried for {int((~ok).sum())} of {num_chains} chains; "
                "check the model, its priors and the data"
            )
        return (positions, value, grad), compile_s

    def init_positions(
        self, *, rng_key: jax.Array, num_chains: int, max_tries: int = 100
    ) -> PyTree:
        """Initial positions only (see :meth:`initial_points`), leaves ``(num_chains, ...)``."""
        return self.initial_points(rng_key=rng_key, num_chains=num_chains, max_tries=max_tries)[0]

    def postprocess(self, positions: PyTree) -> tuple[dict[str, Any], dict[str, Any]]:
        """Constrained values and pointwise log-likelihoods of a batch of draws.

        Args:
            positions: Unconstrained draws, leaves of shape ``(num_chains, num_draws, ...)``.

        Returns:
            ``(constrained, log_likelihood)``: dicts of arrays with leading
                ``(num_chains, num_draws)`` axes.
        """
        constrained, log_lik, observed = _postprocess(
            self.spec, self.data, positions, self.observed_names
        )
        if self._observed is None:
            self._observed = {n: np.asarray(v) for n, v in observed.items()}
        return constrained, log_lik


def _trace(spec: TargetSpec, data: dict) -> dict:
    """Run the model once with latent values drawn as Stan does (works for improper priors)."""
    from numpyro.handlers import seed, substitute, trace
    from numpyro.infer import init_to_uniform

    model = substitute(seed(spec.fn, 0), substitute_fn=init_to_uniform)
    return trace(model).get_trace(**spec.kwargs(data))


def _observed(spec: TargetSpec, data: dict, names: tuple) -> dict[str, Any]:
    if not names:
        return {}
    model_trace = _trace(spec, data)
    return {n: model_trace[n]["value"] for n in names}


_observed_jit = jax.jit(_observed, static_argnames=("spec", "names"))

# (spec, x64, data avals) -> (unconstrained shapes, observed site names): the model
# is traced abstractly (nothing compiled) and only once per model and shapes.
_PROBES: dict[Any, tuple[dict[str, tuple], tuple[str, ...]]] = {}


def _avals(tree: Any) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    return (treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))


def _probe(spec: TargetSpec, data: dict) -> tuple[dict[str, tuple], tuple[str, ...]]:
    from numpyro.distributions import Unit
    from numpyro.distributions.transforms import biject_to

    key = (spec, bool(jax.config.jax_enable_x64), _avals(data))
    if key in _PROBES:
        return _PROBES[key]
    shapes, observed, discrete = {}, [], []

    def record(data):
        for name, site in _trace(spec, data).items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                if not isinstance(site["fn"], Unit):  # factor() sites are not observations
                    observed.append(name)
            elif site["fn"].support.is_discrete:
                discrete.append(name)
            else:
                support = biject_to(site["fn"].support)
                shapes[name] = tuple(support.inverse_shape(jnp.shape(site["value"])))
        return 0.0

    jax.eval_shape(record, data)  # abstract evaluation: shapes only, nothing compiled
    if discrete:
        raise DataError(
            f"latent site(s) {', '.join(map(repr, discrete))} are discrete; "
            "HMC-type samplers need continuous parameters"
        )
    if not shapes:
        raise DataError("the model has no latent (unobserved) sample site to infer")
    _PROBES[key] = (shapes, tuple(observed))
    return _PROBES[key]


def _from_numpyro(model: Callable, data: Mapping[str, Any] | None) -> Target:
    check_data(model, data)
    static, dynamic = split_data(data)
    spec = TargetSpec(model, "numpyro", static)
    shapes, observed_names = _probe(spec, dynamic)
    # NumPy zeros: jnp.zeros would run (in a fresh process, load) two small programs
    example = {n: np.zeros(s, dtype=jnp.result_type(float)) for n, s in shapes.items()}
    return Target(spec, dynamic, example, observed_names, center=example, radius=2.0)


def as_target(
    model: Callable | Target,
    data: Mapping[str, Any] | None = None,
    *,
    initial_position: PyTree | None = None,
    initial_positions: PyTree | None = None,
    radius: float | None = None,
) -> Target:
    """Build the target of a NumPyro model or of a JAX log-density.

    Args:
        model: A NumPyro model (called as ``model(**data)``), a log-density
            ``logdensity_fn(position, **data) -> scalar`` over a pytree of
            unconstrained parameters (then ``initial_position`` or
            ``initial_positions`` is required), or a :class:`Target` (returned
            unchanged).
        data: Keyword arguments of the model or of the log-density. Arrays are
            traced (new values of the same shapes reuse the compiled program);
            integers, booleans, strings and ``None`` are constants.
        initial_position: One chain's position (a pytree of arrays, unconstrained);
            chains start uniformly in ``initial_position ± radius``.
        initial_positions: For a log-density: each chain's starting position,
            leaves of shape ``(num_chains, ...)``, used exactly (``radius``
            defaults to 0), e.g. a warm start from earlier draws.
        radius: Half-width of the box of initial points (default 2 for
            NumPyro models, like Stan; 0.5 around ``initial_position``).

    Returns:
        The target, as a :class:`Target`.

    Raises:
        DataError: Data that do not fit the model (see :func:`check_data`).
        ValueError: Both ``initial_position`` and ``initial_positions`` given.
    """
    if isinstance(model, Target):
        return model
    if not callable(model):
        raise TypeError(f"model must be a NumPyro model or a log-density, got {type(model)!r}")
    if initial_position is not None and initial_positions is not None:
        raise ValueError("give initial_position (one chain) or initial_positions, not both")
    per_chain = initial_positions is not None
    if per_chain:
        center = jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(float)),
                              initial_positions)  # fmt: skip
        if any(jnp.ndim(x) < 1 for x in jax.tree.leaves(center)):
            raise ValueError("initial_positions needs a leading chain axis on every leaf")
        default_radius = 0.0
    if initial_position is not None:
        center = jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(float)),
                              initial_position)  # fmt: skip
        default_radius = 0.5
    if initial_position is not None or per_chain:
        static, dynamic = split_data(data)
        example = jax.tree.map(lambda x: x[0], center) if per_chain else center
        return Target(
            TargetSpec(model, "logdensity", static),
            dynamic,
            example,
            (),
            center=center,
            radius=default_radius if radius is None else radius,
            center_per_chain=per_chain,
        )
    target = _from_numpyro(model, data)
    if radius is not None:
        target.radius = radius
    return target
