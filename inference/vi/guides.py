"""Guides over the unconstrained space of any NumPyro model, and their parameters.

The Gaussian families (:class:`GaussianGuide`) draw the latent vector ``u``
in the model's unconstrained space and map it to the model's support with
the Jacobian correction, so ``log q`` is the density of the constrained
values the model sees. Setting one up only traces the model abstractly
(``jax.eval_shape``), so nothing is compiled eagerly. Any user-written NumPyro guide works the
same way. Parameters are collected by tracing and optimised in the
unconstrained space of their constraints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import biject_to, constraints
from numpyro.handlers import block, seed, substitute, trace

__all__ = [
    "GUIDE_KINDS",
    "GaussianGuide",
    "constrain_params",
    "init_params",
    "make_guide",
    "unconstrain_params",
]

#: Built-in guide families accepted by :func:`make_guide`.
GUIDE_KINDS = ("meanfield", "fullrank", "lowrank", "flow")

#: Auxiliary site of :class:`GaussianGuide` holding the unconstrained latent vector.
LATENT_SITE = "_vi_latent"


class _Site(NamedTuple):
    name: str
    shape: tuple[int, ...]
    transform: Any
    unconstrained_shape: tuple[int, ...]


def _latent_sites(model: Callable, args: tuple, kwargs: dict) -> list[_Site]:
    """Continuous latent sites of ``model`` with their support transforms (shapes only)."""
    found: list[tuple[str, Any, Any]] = []

    def probe():
        # block: the probe must stay invisible to handlers around the guide call.
        with block():
            tr = trace(seed(model, 0)).get_trace(*args, **kwargs)
        for name, site in tr.items():
            if site["type"] == "sample" and not site["is_observed"]:
                found.append((name, site["fn"], site["value"]))

    jax.eval_shape(probe)
    sites = []
    for name, fn, value in found:
        if fn.is_discrete:
            raise ValueError(
                f"latent site {name!r} is discrete: Gaussian guides need continuous latents "
                "(write a NumPyro guide and use the 'score' or 'enum' estimator for it)"
            )
        if any(isinstance(v, jax.core.Tracer) for v in vars(fn.support).values()):
            raise ValueError(f"latent site {name!r} has a support that depends on other sites")
        transform = biject_to(fn.support)
        shape = tuple(value.shape)
        sites.append(_Site(name, shape, transform, tuple(transform.inverse_shape(shape))))
    if not sites:
        raise ValueError("the model has no latent sample site to approximate")
    return sites


class GaussianGuide:
    r"""Gaussian guide over the model's unconstrained latent vector ``u`` (size ``D``).

    ``u ~ N(m, S)`` then every latent site is ``T_i(u_i)`` with ``T_i`` the
    bijection onto its support; the site is emitted as a Delta with density
    :math:`-\log|\det J_{T_i}(u_i)|`, so ``log q`` of the constrained values is exact.

    Parameters (``numpyro.param`` sites): ``vi_loc`` ``(D,)`` and
    ``"meanfield"``: ``vi_scale`` ``(D,)``; ``"fullrank"``: ``vi_scale_tril``
    ``(D, D)``; ``"lowrank"``: ``vi_cov_factor`` ``(D, rank)`` and ``vi_cov_diag`` ``(D,)``.
    """

    def __init__(self, model, family="meanfield", *, init_scale=0.1, rank=None, init_loc=None):
        if family not in ("meanfield", "fullrank", "lowrank"):
            raise ValueError(f"unknown Gaussian family {family!r}")
        if init_scale <= 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}")
        self.model, self.family, self.init_scale = model, family, init_scale
        self.rank, self.init_loc = rank, dict(init_loc or {})
        self.sites: list[_Site] | None = None

    def _initial_loc(self, sites) -> jax.Array:
        parts = []
        for site in sites:
            if site.name in self.init_loc:
                u = site.transform.inv(jnp.asarray(self.init_loc[site.name], jnp.float32))
            else:
                u = jnp.zeros(site.unconstrained_shape)
            parts.append(jnp.reshape(u, -1))
        return jnp.concatenate(parts)

    def __call__(self, *args, **kwargs):
        import numpyro
        import numpyro.distributions as dist

        if self.sites is None:
            self.sites = _latent_sites(self.model, args, kwargs)
        loc = numpyro.param("vi_loc", lambda _: self._initial_loc(self.sites))
        d, s0 = loc.shape[0], self.init_scale
        if self.family == "meanfield":
            scale = numpyro.param(
                "vi_scale", jnp.full((d,), s0), constraint=constraints.softplus_positive
            )
            base = dist.Normal(loc, scale).to_event(1)
        elif self.family == "fullrank":
            tril = numpyro.param(
                "vi_scale_tril", s0 * jnp.eye(d), constraint=constraints.scaled_unit_lower_cholesky
            )
            base = dist.MultivariateNormal(loc, scale_tril=tril)
        else:
            rank = self.rank or max(1, int(np.ceil(np.sqrt(d))))
            factor = numpyro.param("vi_cov_factor", jnp.full((d, rank), 0.0))
            diag = numpyro.param(
                "vi_cov_diag", jnp.full((d,), s0**2), constraint=constraints.softplus_positive
            )
            base = dist.LowRankMultivariateNormal(loc, factor, diag)
        u = numpyro.sample(LATENT_SITE, base, infer={"is_auxiliary": True})
        out = {}
        for site, (value, log_det) in zip(self.sites, _constrain_latent(self.sites, u)):
            out[site.name] = numpyro.sample(
                site.name, dist.Delta(value, -log_det, event_dim=len(site.shape))
            )
        return out


def _constrain_latent(sites: Sequence[_Site], u: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
    """``(value, log|det J|)`` of every site from the unconstrained latent vector ``u (D,)``."""
    out, offset = [], 0
    for site in sites:
        size = int(np.prod(site.unconstrained_shape, dtype=int))
        u_i = u[offset : offset + size].reshape(site.unconstrained_shape)
        offset += size
        value = site.transform(u_i)
        out.append((value, jnp.sum(site.transform.log_abs_det_jacobian(u_i, value))))
    return out


def make_guide(
    model: Callable,
    kind: str = "meanfield",
    *,
    init_scale: float = 0.1,
    rank: int | None = None,
    init_loc: dict[str, Any] | None = None,
    num_flows: int = 2,
) -> Callable:
    r"""A guide over the unconstrained latent space of ``model``.

    - ``"meanfield"``: :math:`u_i \sim N(m_i, s_i^2)` independently.
    - ``"fullrank"``: :math:`u \sim N(m, LL^\top)`.
    - ``"lowrank"``: :math:`u \sim N(m, WW^\top + \mathrm{diag}(d))`, ``W`` of shape
      ``(D, rank)``.
    - ``"flow"``: a Normal pushed through ``num_flows`` inverse autoregressive
      flows (NumPyro's ``AutoIAFNormal``).

    Args:
        model: NumPyro model.
        kind: One of :data:`GUIDE_KINDS`.
        init_scale: Initial standard deviation of the Gaussian families.
        rank: Rank of the low-rank factor (default ``ceil(sqrt(D))``).
        init_loc: Initial constrained values by site (default: ``u = 0``).
        num_flows: Number of flow layers for ``"flow"``.

    Returns:
        A NumPyro guide callable with the model's signature.

    Raises:
        ValueError: For an unknown ``kind``.
    """
    if kind in ("meanfield", "fullrank", "lowrank"):
        return GaussianGuide(model, kind, init_scale=init_scale, rank=rank, init_loc=init_loc)
    if kind == "flow":
        from numpyro.infer import autoguide

        return autoguide.AutoIAFNormal(model, num_flows=num_flows)
    raise ValueError(f"unknown guide {kind!r}; use one of {GUIDE_KINDS} or a NumPyro guide")


def _collect(program, args, kwargs, rng_key, known: dict) -> tuple[dict, dict, dict]:
    tr = trace(substitute(seed(program, rng_key), data=known)).get_trace(*args, **kwargs)
    params, cons, samples = {}, {}, {}
    for name, site in tr.items():
        if site["type"] == "param" and name not in known:
            params[name] = site["value"]
            cons[name] = site["kwargs"].get("constraint", constraints.real)
        elif site["type"] == "sample" and not site["is_observed"]:
            samples[name] = site["value"]
    return params, cons, samples


def init_params(
    guide: Callable,
    model: Callable | None,
    *args: Any,
    rng_key: jax.Array,
    extra_programs: Sequence[Callable] = (),
    **kwargs: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Initial parameters of a guide (and of the model's own ``numpyro.param`` sites).

    Traces the guide, then the model at the guide's draw, then any extra
    programs (e.g. the reverse model of hierarchical VI), collecting every
    ``param`` site.

    Args:
        guide: NumPyro guide.
        model: NumPyro model (``None`` to skip it).
        *args: Positional arguments shared by the programs.
        rng_key: PRNG key for initial values.
        extra_programs: More programs with ``param`` sites, called with
            ``(guide_values, *args, **kwargs)``.
        **kwargs: Keyword arguments shared by the programs.

    Returns:
        ``(params, constraints)``: initial values (constrained) and the
            constraint of each parameter.
    """
    found: dict[str, Any] = {}
    leaves, treedef = jax.tree.flatten((args, kwargs))
    is_array = [isinstance(x, np.ndarray | jax.Array) for x in leaves]

    def collect(rng_key, arrays):
        it = iter(arrays)
        full = [next(it) if a else x for x, a in zip(leaves, is_array)]
        args, kwargs = jax.tree.unflatten(treedef, full)
        keys = jax.random.split(rng_key, 2 + len(extra_programs))
        params, cons, draw = _collect(guide, args, kwargs, keys[0], {})
        programs = [(model, args)] + [(p, (draw, *args)) for p in extra_programs]
        for key, (program, call_args) in zip(keys[1:], programs):
            if program is None:
                continue
            more, more_cons, _ = _collect(program, call_args, kwargs, key, {**params, **draw})
            params.update(more)
            cons.update(more_cons)
        found.update(cons)
        return params

    # One compiled program (data as arguments, not constants) instead of many
    # eagerly compiled operations.
    arrays = [x for x, a in zip(leaves, is_array) if a]
    params = jax.jit(collect)(rng_key, arrays)
    return params, found


def constrain_params(unconstrained: dict[str, Any], cons: dict[str, Any]) -> dict[str, Any]:
    """Map unconstrained parameters to their constrained values (pytrees allowed)."""
    return {
        name: jax.tree.map(biject_to(cons.get(name, constraints.real)), value)
        for name, value in unconstrained.items()
    }


def unconstrain_params(params: dict[str, Any], cons: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`constrain_params`."""
    return {
        name: jax.tree.map(biject_to(cons.get(name, constraints.real)).inv, value)
        for name, value in params.items()
    }
