"""Variational inference front end: fit a guide, diagnose it, return ``InferenceData``.

:func:`fit` trains a guide on a NumPyro model with any objective program of
:mod:`bayes.inference.vi` (chunks of steps compiled once with ``lax.scan``),
with a progress bar showing the objective, convergence detection and a guard
that stops at the first non-finite step naming the site or parameter at
fault. :class:`VIResult` holds the fitted parameters and the objective trace,
draws posterior samples into ``arviz.InferenceData`` and computes the
Pareto-smoothed importance sampling diagnostic :math:`\\hat k` (Yao et al.
2018) of the guide against the model. :func:`sample_vi` is what
``bayes.sample(model, data, method="vi", ...)`` calls.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import arviz as az

__all__ = ["NonFiniteError", "VIResult", "fit", "khat_verdict", "sample_vi"]


class NonFiniteError(FloatingPointError):
    """A step produced a non-finite objective or gradient; ``result`` keeps the last good fit."""

    def __init__(self, message: str, result: VIResult):
        super().__init__(message)
        self.result = result


def khat_verdict(k_hat: float) -> str:
    """Plain-language reading of the PSIS :math:`\\hat k` (thresholds of Yao et al. 2018)."""
    if not np.isfinite(k_hat):
        return "unknown: the importance weights are not finite"
    if k_hat < 0.5:
        return "good: the guide is close to the posterior; its draws and expectations are reliable"
    if k_hat < 0.7:
        return (
            "acceptable: the guide is usable, but tail quantities may be off; "
            "prefer PSIS-reweighted estimates to raw guide draws"
        )
    return (
        "poor: the guide misses important parts of the posterior (too narrow, wrong shape "
        "or wrong mode); do not trust its draws: use a richer guide or MCMC"
    )


@dataclass
class VIResult:
    """A fitted guide.

    Attributes:
        params: Fitted parameters (constrained), by ``numpyro.param`` name.
        objective: Objective sample at every step, shape ``(num_steps_run,)``.
        converged: Whether convergence was detected before ``num_steps``.
        interrupted: Whether the run was stopped by Ctrl-C.
        model: The NumPyro model.
        guide: The NumPyro guide.
        data: Keyword arguments of model and guide.
        seconds: Wall time of the optimisation, compilation included.
    """

    params: dict[str, Any]
    objective: np.ndarray
    converged: bool
    interrupted: bool
    model: Callable
    guide: Callable
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def sample_guide(self, num_samples: int, *, rng_key) -> dict[str, Any]:
        """Every guide site for ``num_samples`` draws, shapes ``(num_samples, ...)``."""
        import jax

        from bayes.inference.vi import guide_draw

        def draw(key):
            return guide_draw(
                self.guide, self.params, rng_key=key, num_particles=num_samples,
                default_estimator="detach", **self.data,
            ).values  # fmt: skip

        return jax.jit(draw)(rng_key)

    def log_weights(self, num_samples: int = 1000, *, rng_key) -> np.ndarray:
        """``log p(x, z) - log q(z)`` for ``num_samples`` guide draws."""
        import jax

        from bayes.inference.vi import log_importance_weights

        def fn(params, key):
            return log_importance_weights(
                self.model, self.guide, params, rng_key=key,
                num_particles=num_samples, **self.data,
            )  # fmt: skip

        # Parameters are arguments, not constants: other fits reuse the compiled program.
        return np.asarray(jax.jit(fn)(self.params, rng_key), dtype=np.float64)

    def psis(self, num_samples: int = 1000, *, rng_key) -> tuple[float, str]:
        """PSIS :math:`\\hat k` of the guide as an importance proposal, with a verdict.

        Returns:
            ``(k_hat, verdict)``; ``k_hat < 0.5`` good, ``< 0.7`` acceptable, else poor.
        """
        log_w = self.log_weights(num_samples, rng_key=rng_key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            k_hat = float(_psislw(log_w))
        return k_hat, khat_verdict(k_hat)

    def to_inference_data(
        self, num_chains: int = 1, num_samples: int = 1000, *, seed: int = 0
    ) -> az.InferenceData:
        """Guide draws as ``arviz.InferenceData`` (``posterior`` with latent and
        deterministic sites, ``log_likelihood``, ``observed_data``), shapes
        ``(num_chains, num_samples, ...)``, with the PSIS diagnostic in ``attrs``
        (``k_hat``, ``k_hat_verdict``, from at least 1000 draws)."""
        import jax

        from bayes.convert import run_attrs, to_inference_data

        total = num_chains * num_samples
        num_psis = min(max(total, 1000), 4000)
        draws = jax.jit(self._draws, static_argnums=(1, 2))(jax.random.key(seed), total, num_psis)
        latents, dets, loglik, observed, log_w = jax.device_get(draws)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            k_hat = float(_psislw(np.asarray(log_w, dtype=np.float64)))

        def shaped(tree):
            return {k: np.asarray(v).reshape(num_chains, num_samples, *np.shape(v)[1:])
                    for k, v in tree.items()}  # fmt: skip

        attrs = run_attrs(
            "vi", {"num_steps": int(self.objective.size)}, k_hat=k_hat,
            k_hat_verdict=khat_verdict(k_hat), converged=self.converged,
            final_objective=float(np.mean(self.objective[-max(1, self.objective.size // 20):])),
            interrupted=self.interrupted, fit_s=self.seconds,
        )  # fmt: skip
        return to_inference_data(
            shaped({**latents, **dets}), log_likelihood=shaped(loglik),
            observed_data={k: v[0] for k, v in observed.items()}, attrs=attrs,
        )  # fmt: skip

    def _draws(self, rng_key, total: int, num_psis: int):
        import jax
        from numpyro.handlers import seed
        from numpyro.infer.util import compute_log_probs

        from bayes.inference.vi import log_importance_weights

        key_draw, key_psis = jax.random.split(rng_key)
        values = self.sample_guide(total, rng_key=key_draw)

        def per_draw(v):
            log_probs, tr = compute_log_probs(
                seed(self.model, 0), (), self.data, {**self.params, **v}, sum_log_prob=False
            )
            sites = [(n, s) for n, s in tr.items() if s["type"] in ("sample", "deterministic")]
            det = {n: s["value"] for n, s in sites if s["type"] == "deterministic"}
            obs = {n: s["value"] for n, s in sites if s["type"] == "sample" and s["is_observed"]}
            latent = {n: s["value"] for n, s in sites if n not in det and n not in obs}
            return latent, det, {n: log_probs[n] for n in obs}, obs

        log_w = log_importance_weights(
            self.model, self.guide, self.params, rng_key=key_psis, num_particles=num_psis,
            **self.data,
        )  # fmt: skip
        return (*jax.vmap(per_draw)(values), log_w)


def _psislw(log_w: np.ndarray) -> float:
    import arviz as az

    return az.psislw(log_w - log_w.max())[1]


def _resolve_objective(objective, num_particles: int | None, alpha: float):
    from bayes.inference import vi

    if callable(objective) or isinstance(objective, vi.StatefulObjective):
        return objective
    k = num_particles or 10
    table = {
        "elbo": lambda: vi.elbo,
        "iwelbo": lambda: vi.iwelbo(k),
        "renyi": lambda: vi.renyi(alpha, k),
        "rws": lambda: vi.rws_wake_phi(k),
        "msc": lambda: vi.markov_score_climbing(num_particles=k),
    }
    if objective not in table:
        raise ValueError(f"unknown objective {objective!r}; use one of {sorted(table)}")
    return table[objective]()


def fit(
    model: Callable,
    data: Mapping[str, Any] | None = None,
    *,
    guide: str | Callable = "meanfield",
    objective: str | Callable = "elbo",
    num_steps: int = 5000,
    optimizer: Any = None,
    learning_rate: float = 0.01,
    num_particles: int | None = None,
    alpha: float = 0.5,
    baseline: Any = None,
    rank: int | None = None,
    init_scale: float = 0.1,
    chunk_size: int = 100,
    convergence: bool = True,
    patience: int = 2,
    plateau_factor: float = 0.3,
    max_cuts: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> VIResult:
    """Fit a guide to a NumPyro model by stochastic optimisation of an objective.

    Args:
        model: NumPyro model called as ``model(**data)``.
        data: Keyword arguments of model and guide.
        guide: ``"meanfield"``, ``"fullrank"``, ``"lowrank"``, ``"flow"`` or a NumPyro guide.
        objective: ``"elbo"``, ``"iwelbo"``, ``"renyi"``, ``"rws"``, ``"msc"``
            or an objective program (see :mod:`bayes.inference.vi.objectives`).
        num_steps: Maximum number of optimisation steps.
        optimizer: optax transformation (default ``adam(learning_rate)``).
        learning_rate: Step size of the default optimiser.
        num_particles: ``K`` of the multi-particle objectives (default 10).
        alpha: Order of the Rényi bound.
        baseline: Control variate for score-function sites.
        rank: Rank of the low-rank guide.
        init_scale: Initial scale of the Gaussian guides.
        chunk_size: Steps compiled together; progress, convergence and the
            finiteness guard are checked between chunks.
        convergence: Reduce the step size on plateaus and stop once converged:
            when the chunk-mean objective has not risen by more than twice its
            Monte Carlo standard error for ``patience`` chunks, every update is
            scaled by ``plateau_factor`` once more; after ``max_cuts`` cuts the
            fit has converged.
        patience: Chunks without a significant rise before a cut.
        plateau_factor: Factor applied to the step size at each cut.
        max_cuts: Cuts before stopping.
        seed: Seed of initialisation and optimisation.
        progress: Show a progress bar with the objective.

    Returns:
        The fit, as a :class:`VIResult` (Ctrl-C returns the fit so far, ``interrupted=True``).

    Raises:
        NonFiniteError: A step's objective or gradient is not finite; the
            message names the culprit sites or parameters.
    """
    import jax
    import optax

    from bayes._progress import progress_bar
    from bayes.inference import vi
    from bayes.target import check_data

    data = dict(data or {})
    check_data(model, data)
    if num_steps < 1 or chunk_size < 1:
        raise ValueError("num_steps and chunk_size must be positive")
    if isinstance(guide, str):
        guide = vi.make_guide(model, guide, init_scale=init_scale, rank=rank)
    program = _resolve_objective(objective, num_particles, alpha)
    # The last link scales every update; plateaus cut it (see `convergence`).
    optimizer = optax.chain(
        optimizer or optax.adam(learning_rate),
        optax.inject_hyperparams(optax.scale)(step_size=1.0),
    )
    key_init, key_state, key_run = jax.random.split(jax.random.key(seed), 3)
    alg = vi.build(program, model, guide, optimizer, rng_key=key_init, baseline=baseline, **data)
    state = alg.init(rng_key=key_state)
    step, finite = jax.jit(alg.step), jax.jit(vi.all_finite)

    @partial(jax.jit, static_argnums=2)
    def chunk(state, key, n):
        # Finiteness is checked once per chunk, not per step (see bayes.inference.vi.train).
        state, info = vi.run_steps(alg.step, state, key, n)
        return state, info, info.is_finite.all() & vi.all_finite(state)

    trace: list[np.ndarray] = []
    previous: tuple[float, float] | None = None
    converged = interrupted = False
    stale = cuts = 0
    t0 = time.perf_counter()
    with progress_bar(total=num_steps, desc="VI", enabled=progress) as bar:
        try:
            done = 0
            while done < num_steps:
                n = min(chunk_size, num_steps - done)
                key = jax.random.fold_in(key_run, done)
                start = state
                state, info, ok = chunk(state, key, n)
                if not bool(ok):
                    # Replay to the first step whose objective or new state is not finite.
                    keys, bad = jax.random.split(key, n), n - 1
                    for i in range(n - 1):
                        new, step_info = step(keys[i], start)
                        if not (bool(step_info.is_finite) and bool(finite(new))):
                            bad = i
                            break
                        start = new
                    trace.append(np.asarray(info.objective)[:bad])
                    last_good = _result(alg, start, trace, False, True, model, guide, data, t0)
                    raise NonFiniteError(
                        _nonfinite_message(alg, start, keys[bad], done + bad, model, guide, data),
                        last_good,
                    )
                values = np.asarray(info.objective)
                trace.append(values)
                done += n
                mean, se = float(values.mean()), float(values.std() / np.sqrt(max(n - 1, 1)))
                rising = previous is None or mean - previous[0] > 2.0 * np.hypot(se, previous[1])
                stale = 0 if rising else stale + 1
                previous = (mean, se)
                bar.update(n)
                bar.set_postfix(objective=f"{mean:.4g}", lr_scale=f"{plateau_factor**cuts:.2g}")
                if convergence and stale >= patience:
                    cuts, stale = cuts + 1, 0
                    if cuts > max_cuts:
                        converged = done < num_steps
                        break
                    state = state._replace(opt_state=_scaled(state.opt_state, plateau_factor**cuts))
        except KeyboardInterrupt:
            interrupted = True
            warnings.warn("VI interrupted: returning the fit so far", stacklevel=2)
    return _result(alg, state, trace, converged, interrupted, model, guide, data, t0)


def _scaled(opt_state, factor: float):
    inner, scale_state = opt_state
    hyper = dict(scale_state.hyperparams)
    hyper["step_size"] = np.asarray(factor, dtype=np.asarray(hyper["step_size"]).dtype)
    return (inner, scale_state._replace(hyperparams=hyper))


def _result(alg, state, trace, converged, interrupted, model, guide, data, t0) -> VIResult:
    import jax

    params = jax.device_get(alg.constrain(state.params))
    params.pop("_baseline", None)
    objective = np.concatenate(trace) if trace else np.zeros(0)
    return VIResult(
        params, objective, converged, interrupted, model, guide, data, time.perf_counter() - t0
    )


def _nonfinite_message(alg, state, key, step_index, model, guide, data) -> str:
    import jax

    from bayes.inference.vi import nonfinite_sites

    params = alg.constrain(state.params)
    grads = jax.jit(jax.grad(lambda u: alg.step(key, state._replace(params=u))[1].objective))(
        state.params
    )
    culprits = nonfinite_sites(model, guide, params, rng_key=key, grads=grads, **data)
    where = "; ".join(culprits) if culprits else "no single site (check the objective program)"
    return (
        f"VI step {step_index}: the objective or its gradient is not finite. "
        f"Culprits: {where}. The last finite fit is in this error's `result`."
    )


def sample_vi(
    model: Callable,
    data: Mapping[str, Any] | None = None,
    *,
    num_chains: int = 1,
    num_warmup: int = 0,
    num_samples: int = 1000,
    seed: int = 0,
    progress: bool = True,
    **options: Any,
) -> az.InferenceData:
    """``bayes.sample(..., method="vi")``: fit a guide and return its draws.

    Args:
        model: NumPyro model called as ``model(**data)``.
        data: Its keyword arguments.
        num_chains: Draws are arranged as ``num_chains`` independent groups.
        num_warmup: Ignored (VI has no warmup; use ``num_steps``).
        num_samples: Draws per group.
        seed: Seed of the fit and of the draws.
        progress: Progress bar during the fit.
        **options: Passed to :func:`fit` (``objective``, ``guide``, ``num_steps``,
            ``learning_rate``, ``num_particles``, ...).

    Returns:
        ``arviz.InferenceData`` (see :meth:`VIResult.to_inference_data`).
    """
    del num_warmup
    result = fit(model, data, seed=seed, progress=progress, **options)
    return result.to_inference_data(num_chains, num_samples, seed=seed)
