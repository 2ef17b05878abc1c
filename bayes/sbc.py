"""Simulation-based calibration (Talts et al. 2018) of HMC-type samplers.

For :math:`s = 1..S`: draw :math:`\\tilde\\theta_s \\sim p(\\theta)` and
:math:`\\tilde y_s \\sim p(y \\mid \\tilde\\theta_s)`, sample :math:`L`
(thinned, nearly independent) draws :math:`\\theta_{s,1..L}` of
:math:`p(\\theta \\mid \\tilde y_s)` and record the rank
:math:`r_s = \\#\\{l : \\theta_{s,l} < \\tilde\\theta_s\\} \\in \\{0..L\\}` of
every scalar parameter. A calibrated sampler gives ranks uniform on
:math:`\\{0, \\dots, L\\}`; we test each parameter with a chi-square test on
``num_bins`` equal bins and combine them with Bonferroni's correction, so
:meth:`SBCResult.is_calibrated` has a false-alarm rate of at most ``alpha``.

All :math:`S` posteriors are sampled at once: each simulation is one chain
with its own data (the chains are vectorised with ``vmap``), so the
transition is compiled once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SBCResult", "sbc"]


@dataclass
class SBCResult:
    """Ranks and uniformity tests of a simulation-based calibration.

    Attributes:
        ranks: Latent site -> ranks of shape ``(num_simulations, *site_shape)``
            in ``0..num_draws``.
        num_draws: Posterior draws per simulation (:math:`L`).
        num_bins: Bins of the chi-square tests.
        p_values: Scalar parameter (``"tau"``, ``"theta[0]"``) -> p-value of
            the chi-square test of uniform ranks.
    """

    ranks: dict[str, np.ndarray]
    num_draws: int
    num_bins: int
    p_values: dict[str, float]

    def is_calibrated(self, alpha: float = 0.01) -> bool:
        """No parameter rejects uniformity at the Bonferroni level ``alpha / #parameters``."""
        return min(self.p_values.values()) >= alpha / len(self.p_values)

    def plot(self, max_panels: int = 12):
        """Rank histograms with the 99% band of uniform bin counts; returns the figure."""
        import matplotlib.pyplot as plt
        from scipy import stats

        names = list(self.p_values)[:max_panels]
        cols = min(4, len(names))
        rows = -(-len(names) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), squeeze=False)
        flat = _flat_ranks(self.ranks)
        num_sims = len(next(iter(flat.values())))
        lo, hi = stats.binom.ppf([0.005, 0.995], num_sims, 1 / self.num_bins)
        for ax, name in zip(axes.ravel(), names):
            counts = _bin_counts(flat[name], self.num_draws, self.num_bins)
            ax.axhspan(lo, hi, color="0.85")
            ax.bar(np.arange(self.num_bins), counts, width=1.0, edgecolor="k")
            ax.set_title(f"{name} (p={self.p_values[name]:.2g})", fontsize=9)
            ax.set_yticks([])
        for ax in axes.ravel()[len(names) :]:
            ax.axis("off")
        fig.tight_layout()
        return fig


def _flat_ranks(ranks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, r in ranks.items():
        if r.ndim == 1:
            out[name] = r
            continue
        for idx in np.ndindex(r.shape[1:]):
            out[f"{name}[{','.join(map(str, idx))}]"] = r[(slice(None), *idx)]
    return out


def _bin_counts(ranks: np.ndarray, num_draws: int, num_bins: int) -> np.ndarray:
    bins = (ranks * num_bins) // (num_draws + 1)
    return np.bincount(bins.astype(int), minlength=num_bins)


def sbc(
    model: Callable,
    data: Mapping[str, Any] | None = None,
    *,
    observed: Sequence[str] = ("y",),
    num_simulations: int = 200,
    num_warmup: int = 300,
    num_draws: int = 99,
    thin: int = 2,
    num_bins: int = 10,
    seed: int = 0,
    simulator: Callable | None = None,
    progress: bool = True,
    **options: Any,
) -> SBCResult:
    """Simulation-based calibration of NUTS (or HMC) on a NumPyro model.

    Args:
        model: NumPyro model; the arguments named in ``observed`` hold the
            observations (``None`` makes the model simulate them) and are
            also the names of their sample sites.
        data: The other (fixed) arguments, e.g. covariates and sizes.
        observed: Names of the observed arguments.
        num_simulations: :math:`S`, the number of simulated data sets.
        num_warmup: Warmup steps per posterior.
        num_draws: :math:`L`; choose ``num_draws + 1`` divisible by ``num_bins``.
        thin: Keep every ``thin``-th draw (reduces autocorrelation of the ranks).
        num_bins: Bins of the uniformity tests.
        seed: Seed of the simulations and the sampler.
        simulator: Model to simulate from instead of ``model`` (default
            ``model``); a different one is a negative control that SBC must flag.
        progress: Show a progress bar.
        **options: ``method`` (``"nuts"`` or ``"hmc"``) and the sampler settings
            of :func:`bayes.sample` (``max_tree_depth``, ``chunk_size``, ...).

    Returns:
        The result, as an :class:`SBCResult`.
    """
    import jax
    import jax.numpy as jnp
    from blackjax.mcmc.hmc import HMCState
    from numpyro.infer import Predictive
    from scipy import stats

    from bayes import sampling
    from bayes._progress import progress_bar
    from bayes.inference.mcmc import run_chunk, schedule
    from bayes.target import as_target, split_data

    method = options.pop("method", "nuts")
    if method not in ("nuts", "hmc"):
        raise ValueError(f"sbc supports methods 'nuts' and 'hmc', got {method!r}")
    settings = sampling._settings(method, options)
    data = dict(data or {})
    key_sim, key_init, key_run = jax.random.split(jax.random.key(seed), 3)
    prior = Predictive(simulator or model, num_samples=num_simulations)(
        key_sim, **{k: v for k, v in data.items() if k not in observed}
    )
    missing = [name for name in observed if name not in prior]
    if missing:
        raise ValueError(f"the model has no sample site named {', '.join(map(repr, missing))}")
    first = {**data, **{name: np.asarray(prior[name][0]) for name in observed}}
    target = as_target(model, first)
    settings = sampling.resolve_mass_matrix(method, settings, target.num_dimensions)
    _, dynamic = split_data({**data, **{n: np.asarray(prior[n]) for n in observed}})
    batched = {
        k: v if k in observed else jnp.broadcast_to(v, (num_simulations, *jnp.shape(v)))
        for k, v in dynamic.items()
    }
    positions = target.init_positions(rng_key=key_init, num_chains=num_simulations)
    init, step = sampling._step_fns(method, settings)
    spec, size = target.spec, settings.chunk_size

    def init_all(positions, data):
        def one(p, d):
            value, grad = jax.value_and_grad(spec.logdensity)(p, d)
            return init(HMCState(p, value, grad), settings.initial_step_size)

        return jax.vmap(one)(positions, data)

    states = jax.jit(init_all)(positions, batched)

    def chunk(states, data, rng_key, start, num_warmup, stage, window_end):
        return run_chunk(step, spec.logdensity, states, data, rng_key, start, num_warmup,
                         stage, window_end, data_axis=0)  # fmt: skip

    stage, window_end = schedule(num_warmup)
    total = num_warmup + num_draws * thin
    stage = np.concatenate([stage, np.zeros(total - num_warmup + size, np.int32)])
    window_end = np.concatenate([window_end, np.zeros(total - num_warmup + size, bool)])
    draws, t = [], 0
    with progress_bar(total=total, desc="SBC", enabled=progress, unit="step") as bar:
        while t < total:
            n = min(size, (num_warmup if t < num_warmup else total) - t)
            sched = (jnp.asarray(stage[t : t + n]), jnp.asarray(window_end[t : t + n]))
            args = (key_run, jnp.int32(t), jnp.int32(num_warmup), *sched)
            key = (spec, method, settings, "sbc")
            program, _ = sampling._compile("sbc", key, lambda: chunk, states, batched, *args)
            states, info = program(states, batched, *args)
            if t >= num_warmup:
                draws.append(jax.tree.map(np.asarray, info.position))
            t += n
            bar.update(n)
    position = jax.tree.map(lambda *xs: np.concatenate(xs)[thin - 1 :: thin], *draws)

    def constrain(p, d):  # p: (L, ...) draws of one simulation
        return jax.vmap(lambda x: spec.constrain(x, d))(p)

    moved = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), position)
    values = jax.jit(jax.vmap(constrain))(moved, batched)
    ranks, p_values = {}, {}
    for name in target.example_position:
        truth = np.asarray(prior[name])[:, None]
        ranks[name] = np.sum(np.asarray(values[name]) < truth, axis=1)
    for name, r in _flat_ranks(ranks).items():
        counts = _bin_counts(r, num_draws, num_bins)
        p_values[name] = float(stats.chisquare(counts).pvalue)
    return SBCResult(ranks, num_draws, num_bins, p_values)
