"""Convergence diagnostics in plain language, plots, and simulation-based calibration.

Built on ArviZ: :func:`summary` is ``az.summary`` at full precision,
:func:`convergence_warnings` turns its numbers into sentences using the
usual thresholds (Vehtari et al. 2021: R-hat at most 1.01, bulk and tail ESS
at least 400; Betancourt 2016: E-BFMI at least 0.3; any divergence), and
:func:`save_plots` writes trace, rank and pair plots. :func:`sbc` (from
:mod:`bayes.sbc`) checks a sampler's calibration on a model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bayes.sbc import SBCResult, sbc

__all__ = [
    "SBCResult",
    "convergence_warnings",
    "save_plots",
    "sbc",
    "summary",
    "summary_json",
]

SUMMARY_COLUMNS = ("mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat")


def summary(idata: Any, var_names: list[str] | None = None):
    """ArviZ summary table (pandas DataFrame) at full precision, 0-based indices.

    Args:
        idata: ``InferenceData`` with a ``posterior`` group.
        var_names: Variables to include (default: all).
    """
    import arviz as az

    return az.summary(idata, var_names=var_names, round_to="none")


def summary_json(idata: Any) -> dict[str, Any]:
    """The run as one JSON-able dict: per-parameter summary, divergences and timings.

    Returns:
        ``{"parameters": {"theta[0]": {"mean", "sd", "mcse_mean", "ess_bulk",
            "ess_tail", "r_hat"}, ...}, "divergences": n, "timings": {...}}``;
            non-finite numbers become ``None``.
    """
    table = summary(idata)
    params = {}
    for name, row in table.iterrows():
        params[str(name)] = {}
        for col in SUMMARY_COLUMNS:
            value = float(row[col])
            params[str(name)][col] = value if math.isfinite(value) else None
    attrs = idata.posterior.attrs
    timings = {k: float(attrs[k]) for k in ("compile_s", "warmup_s", "sampling_s") if k in attrs}
    return {"parameters": params, "divergences": _divergences(idata), "timings": timings}


def _divergences(idata: Any) -> int:
    stats = getattr(idata, "sample_stats", None)
    if stats is None or "diverging" not in stats:
        return 0
    return int(stats["diverging"].values.sum())


def convergence_warnings(
    idata: Any, *, max_r_hat: float = 1.01, min_ess: float = 400.0, min_bfmi: float = 0.3
) -> list[str]:
    """Plain-language warnings about a run (empty when nothing looks wrong).

    Args:
        idata: ``InferenceData`` (``sample_stats`` with ``diverging`` and
            ``energy`` are used when present).
        max_r_hat: Largest acceptable rank-normalised split R-hat.
        min_ess: Smallest acceptable bulk and tail effective sample size.
        min_bfmi: Smallest acceptable energy Bayesian fraction of missing information.

    Returns:
        One sentence per problem.
    """
    import arviz as az
    import numpy as np

    table = summary(idata)
    out = []
    bad = table[table["r_hat"] > max_r_hat]
    if len(bad):
        out.append(
            f"R-hat above {max_r_hat} for {len(bad)} parameter(s) ({_names(bad)}): the chains "
            "disagree; run longer or reparameterize."
        )
    for col, label in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
        bad = table[table[col] < min_ess]
        if len(bad):
            out.append(
                f"{label} ESS below {min_ess:g} for {len(bad)} parameter(s) ({_names(bad)}): "
                f"too few effective draws for reliable {label} estimates; draw more."
            )
    n_div = _divergences(idata)
    if n_div:
        total = int(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"])
        out.append(
            f"{n_div} of {total} transitions diverged: the sampler missed part of the posterior; "
            "raise target_acceptance_rate or reparameterize."
        )
    stats = getattr(idata, "sample_stats", None)
    if stats is not None and "energy" in stats:
        bfmi = np.atleast_1d(az.bfmi(idata))
        low = [i for i, b in enumerate(bfmi) if b < min_bfmi]
        if low:
            out.append(
                f"E-BFMI below {min_bfmi} in chain(s) {', '.join(map(str, low))}: the momentum "
                "resampling explores the energy poorly; reparameterize (heavy tails, funnels)."
            )
    return out


def _names(table: Any, limit: int = 5) -> str:
    names = [str(n) for n in table.index[:limit]]
    return ", ".join(names) + (", ..." if len(table) > limit else "")


def save_plots(
    idata: Any, folder: str | Path, *, var_names: list[str] | None = None, max_pair: int = 6
) -> list[Path]:
    """Write trace, rank and pair plots as PNG files.

    Args:
        idata: ``InferenceData``.
        folder: Output folder (created).
        var_names: Variables to plot (default: all, pair plot limited to the
            first ``max_pair`` scalar components).
        max_pair: Largest number of variables in the pair plot.

    Returns:
        Paths written: ``trace.png``, ``rank.png``, ``pair.png``.
    """
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = var_names or list(idata.posterior.data_vars)
    written = []
    for kind, plot in (("trace", az.plot_trace), ("rank", az.plot_rank)):
        plot(idata, var_names=names, compact=True) if kind == "trace" else plot(
            idata, var_names=names
        )
        written.append(_save(plt, folder / f"{kind}.png"))
    scalars = [n for n in names if idata.posterior[n].ndim == 2][:max_pair]
    pair_vars = scalars if len(scalars) >= 2 else names[:max_pair]
    az.plot_pair(idata, var_names=pair_vars, divergences="sample_stats" in idata.groups())
    written.append(_save(plt, folder / "pair.png"))
    return written


def _save(plt: Any, path: Path) -> Path:
    fig = plt.gcf()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close("all")
    return path
