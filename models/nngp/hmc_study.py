"""NUTS over the hyperparameters against type-II maximum likelihood, paired per test point.

:func:`compare_hmc_type2` runs both treatments on the same standardized splits of
:func:`~bayes.models.nngp.data.split` (80/10/10, test set capped as in the
``nngp-regression-small`` experiment) with few training points, where the prior
over the hyperparameters can matter. Type-II ML is the inverse-gamma scale mixture
of :func:`~bayes.models.nngp.regression.fit_hyperparameters` (the same Student-t
predictive family as NUTS with the scale integrated), so the comparison isolates
plugging in one value of ``theta`` against averaging over its posterior.

Per test point ``j`` of split ``r`` the paired differences are

.. math::

    \\Delta^{\\mathrm{NLL}}_{rj} = -\\log p_{\\mathrm{ML}}(y_j) + \\log p_{\\mathrm{HMC}}(y_j),
    \\qquad
    \\Delta^{\\mathrm{SE}}_{rj} = (\\mu^{\\mathrm{ML}}_j - y_j)^2
    - (\\mu^{\\mathrm{HMC}}_j - y_j)^2,

positive when HMC is better. Two standard errors are reported: over all pooled
points (ignores that points of one split share a training set) and over the
per-split means (the honest one with few splits).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["compare_hmc_type2", "hmc_type2_experiment", "summarize_pairs"]


def _one_split(name, n_train, seed, *, depth, max_eval, num_steps, num_warmup, num_samples):
    import jax

    from bayes._blas import serial_blas

    from .data import load_regression, split
    from .hmc import hmc_predict, sample_hyperparameters
    from .regression import fit_hyperparameters, init_params, predict

    x, y = load_regression(name)
    s = split(x, y, seed=seed, max_train=n_train, max_eval=max_eval)
    t0 = time.perf_counter()
    with jax.enable_x64(True), serial_blas():  # small factorizations: threads only spin
        init = init_params("inverse_gamma", weight_variance=2.0, bias_variance=0.1)
        params, _ = fit_hyperparameters(
            s.x_train, s.y_train, family="inverse_gamma", depth=depth, num_steps=num_steps,
            init=init,
        )  # fmt: skip
        ml = predict(
            params, s.x_train, s.y_train, s.x_test, s.y_test, family="inverse_gamma", depth=depth
        )
    t1 = time.perf_counter()
    idata = sample_hyperparameters(
        s.x_train, s.y_train, depth=depth, num_warmup=num_warmup, num_samples=num_samples,
        seed=seed,
    )  # fmt: skip
    hmc = hmc_predict(idata, s.x_train, s.y_train, s.x_test, s.y_test, depth=depth)
    t2 = time.perf_counter()
    # numpy from here: jax reductions outside the x64 context would round to float32
    ml_mean, hmc_mean = np.asarray(ml.mean)[:, 0], np.asarray(hmc.mean)[:, 0]
    ml_logd, hmc_logd = np.asarray(ml.log_density), np.asarray(hmc.log_density)
    return {
        "nll_diff": (hmc_logd - ml_logd).tolist(),
        "se_diff": ((ml_mean - s.y_test) ** 2 - (hmc_mean - s.y_test) ** 2).tolist(),
        "ml_nll": float(-ml_logd.mean()),
        "hmc_nll": float(-hmc_logd.mean()),
        "ml_rmse": float(np.sqrt(np.mean((ml_mean - s.y_test) ** 2))),
        "hmc_rmse": float(np.sqrt(np.mean((hmc_mean - s.y_test) ** 2))),
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "seconds_ml": t1 - t0,
        "seconds_hmc": t2 - t1,
    }


def summarize_pairs(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Mean paired difference and its standard errors.

    Args:
        runs: Per-split results, each with a list of per-point differences under ``key``.
        key: ``"nll_diff"`` or ``"se_diff"``.

    Returns:
        ``mean`` (over pooled points), ``se_points`` (pooled points), ``se_splits``
            (over per-split means; ``nan`` for one split) and ``wins`` (splits with a
            positive mean).
    """
    pooled = np.concatenate([np.asarray(r[key]) for r in runs])
    per_split = np.array([np.mean(r[key]) for r in runs])
    k = len(per_split)
    return {
        "mean": float(pooled.mean()),
        "se_points": float(pooled.std(ddof=1) / np.sqrt(len(pooled))),
        "se_splits": float(per_split.std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan"),
        "wins": int(np.sum(per_split > 0)),
        "splits": k,
    }


def compare_hmc_type2(
    datasets: tuple[str, ...] = ("boston", "concrete", "diabetes", "synthetic-heavy-tailed"),
    train_sizes: tuple[int, ...] = (20, 100),
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    *,
    depth: int = 2,
    max_eval: int = 100,
    num_steps: int = 100,
    num_warmup: int = 300,
    num_samples: int = 300,
    cache: str | Path | None = None,
    log: Callable[[str], object] = print,
) -> dict[str, dict[str, Any]]:
    """NUTS (scale integrated) vs the type-II ML inverse-gamma fit, paired per test point.

    Every (data set, training size, seed) job is independent; with ``cache`` each
    finished job is appended to that JSON-lines file and skipped when the call is
    repeated, so an interrupted run resumes. NUTS uses 4 chains of
    ``num_warmup + num_samples`` steps; type-II ML uses ``num_steps`` Adam steps from
    ``sigma_w^2 = 2, sigma_b^2 = 0.1`` as in ``nngp-regression-small``.

    Args:
        datasets: Names of :data:`~bayes.models.nngp.data.REGRESSION_DATASETS`.
        train_sizes: Training points per split (the first ``n`` of the 80% part).
        seeds: Split seeds (also NUTS seeds).
        depth: Hidden layers of the ReLU network.
        max_eval: Cap on the test points per split.
        num_steps: Adam steps of type-II ML.
        num_warmup: NUTS warmup steps per chain.
        num_samples: NUTS draws kept per chain.
        cache: Optional JSON-lines file of finished jobs.
        log: Called with one line per finished job.

    Returns:
        ``{"<data set>/n=<n>": {"nll": summary, "se": summary, "runs": [...]}}`` with
            the summaries of :func:`summarize_pairs` (positive = HMC better; ``se`` is the
            squared error, in standardized units).
    """
    settings = dict(
        depth=depth, max_eval=max_eval, num_steps=num_steps, num_warmup=num_warmup,
        num_samples=num_samples,
    )  # fmt: skip
    done: dict[tuple, dict] = {}
    path = Path(cache) if cache is not None else None
    if path is not None and path.exists():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec["settings"] == settings:
                done[(rec["data"], rec["n_train"], rec["seed"])] = rec["result"]
    for seed in seeds:  # seed-major: a stopped run has every cell for its first seeds
        for n_train in train_sizes:
            for name in datasets:
                key = (name, n_train, seed)
                if key in done:
                    continue
                res = _one_split(name, n_train, seed, **settings)
                done[key] = res
                if path is not None:
                    rec = dict(data=name, n_train=n_train, seed=seed, settings=settings)
                    with path.open("a") as f:
                        f.write(json.dumps({**rec, "result": res}) + "\n")
                log(_job_line(name, n_train, seed, res))
    return _cells(done, datasets, train_sizes, seeds)


def _job_line(name: str, n_train: int, seed: int, res: dict[str, Any]) -> str:
    return (
        f"{name} n={n_train} seed={seed}: NLL ML {res['ml_nll']:.3f} "
        f"HMC {res['hmc_nll']:.3f}; RMSE ML {res['ml_rmse']:.3f} "
        f"HMC {res['hmc_rmse']:.3f}; {res['divergences']} div; "
        f"{res['seconds_ml']:.0f}+{res['seconds_hmc']:.0f} s"
    )


def _cells(done, datasets, train_sizes, seeds) -> dict[str, dict[str, Any]]:
    """Summaries per (data set, training size) of the finished jobs in ``done``."""
    out: dict[str, dict[str, Any]] = {}
    for name in datasets:
        for n_train in train_sizes:
            runs = [done[(name, n_train, s)] for s in seeds if (name, n_train, s) in done]
            if runs:
                out[f"{name}/n={n_train}"] = {
                    "nll": summarize_pairs(runs, "nll_diff"),
                    "se": summarize_pairs(runs, "se_diff"),
                    "divergences": sum(r["divergences"] for r in runs),
                    "runs": runs,
                }
    return out


def _plot(ctx, cells: dict[str, dict[str, Any]], datasets, train_sizes) -> None:
    """Per-split mean Delta NLL (dots) and their mean +- s.e. over splits, per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    width, labels = 0.8 / len(train_sizes), set()
    for i, n_train in enumerate(train_sizes):
        for j, name in enumerate(datasets):
            cell = cells.get(f"{name}/n={n_train}")
            if cell is None:
                continue
            pos = j + (i - (len(train_sizes) - 1) / 2) * width
            per_split = [np.mean(r["nll_diff"]) for r in cell["runs"]]
            # splits beside their mean, so that they are not hidden behind its error bar
            ax.plot([pos + width / 4] * len(per_split), per_split, ".", color=f"C{i}", alpha=0.5)
            se = cell["nll"]["se_splits"]
            label = None if f"n = {n_train}" in labels else f"n = {n_train}"
            labels.add(label)
            yerr = 0.0 if np.isnan(se) else se  # one split: no error bar
            ax.errorbar(pos, np.mean(per_split), yerr=yerr, fmt="o", color=f"C{i}", capsize=3,
                        label=label)  # fmt: skip
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(datasets)), datasets, fontsize=8)
    ax.set_ylabel("Delta NLL per test point (nats)\n(positive = HMC better)")
    ax.set_title("NUTS over the hyperparameters vs type-II ML, per split")
    ax.legend(fontsize=8)
    ctx.savefig(fig, "hmc_type2")


def hmc_type2_experiment(ctx: Any) -> dict[str, Any]:
    """The ``nngp-hmc`` experiment: :func:`compare_hmc_type2`'s study as cached jobs.

    Full mode: the defaults of :func:`compare_hmc_type2` (Boston, concrete, diabetes
    and the heavy-tailed set; 20 and 100 training points; split seeds ``seed`` to
    ``seed + 4``). Quick mode: Boston, 20 training points, 2 splits, 50 test points,
    4 chains of 100 + 100 steps. Each (data set, training size, split) is one job of
    ``ctx.cached``, so an interrupted run resumes from the jobs it finished.

    Returns:
        ``settings``, ``cells`` (as :func:`compare_hmc_type2` returns) and ``table``
            (the summaries without the per-point differences).
    """
    if ctx.quick:
        datasets, train_sizes, num_splits = ("boston",), (20,), 2
        settings = dict(depth=2, max_eval=50, num_steps=100, num_warmup=100, num_samples=100)
    else:
        datasets = ("boston", "concrete", "diabetes", "synthetic-heavy-tailed")
        train_sizes, num_splits = (20, 100), 5
        settings = dict(depth=2, max_eval=100, num_steps=100, num_warmup=300, num_samples=300)
    seeds = tuple(ctx.seed + i for i in range(num_splits))
    done: dict[tuple, dict] = {}
    for seed in seeds:  # seed-major, as in compare_hmc_type2
        for n_train in train_sizes:
            for name in datasets:
                res = ctx.cached(
                    f"{name}-n{n_train}-seed{seed}",
                    lambda name=name, n_train=n_train, seed=seed: _one_split(
                        name, n_train, seed, **settings
                    ),
                    settings=dict(settings, data=name, n_train=n_train, split_seed=seed),
                )
                done[(name, n_train, seed)] = res
                ctx.log(_job_line(name, n_train, seed, res))
    cells = _cells(done, datasets, train_sizes, seeds)
    _plot(ctx, cells, datasets, train_sizes)
    table = {
        key: {
            "nll": cell["nll"], "se": cell["se"], "divergences": cell["divergences"],
            "ml_nll": [r["ml_nll"] for r in cell["runs"]],
            "hmc_nll": [r["hmc_nll"] for r in cell["runs"]],
        }
        for key, cell in cells.items()
    }  # fmt: skip
    return {"settings": dict(settings, seeds=list(seeds)), "table": table, "cells": cells}
