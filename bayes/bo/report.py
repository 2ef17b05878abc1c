"""Reports of a study: best point, a table of trials, CSV and PNG plots.

Plots (matplotlib, written by :func:`write_report`):

- ``best_so_far.png``: best feasible objective value against the number of
  finished evaluations; with a known optimum, a second panel shows the simple
  regret :math:`r_n = |f^\\star - \\min_{i \\le n} f(x_i)|` on a log scale.
- ``objective_vs_inputs.png``: the objective against each input; failed
  trials are marked with red crosses along the top of each panel.
- ``pareto.png`` (several objectives): the first two objectives with the
  Pareto set highlighted.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from bayes.bo.study import Study

__all__ = ["best_so_far", "summary", "trials_table", "write_report"]


def best_so_far(study: Study) -> np.ndarray:
    """Best feasible objective after each finished evaluation, shape ``(n_finished,)``.

    Finished means complete or failed, in order of finishing; ``nan`` until the
    first feasible result. Single-objective studies only.
    """
    obj = study.objectives[0]
    sign = 1.0 if obj["direction"] == "maximize" else -1.0
    done = sorted(study.trials(["complete", "failed"]), key=lambda t: (t.finished or 0.0, t.id))
    out, best = [], -np.inf
    for t in done:
        if t.state == "complete" and study._feasible(t):
            best = max(best, sign * t.outcomes[obj["name"]])
        out.append(sign * best if np.isfinite(best) else np.nan)
    return np.asarray(out, dtype=np.float64)


def summary(study: Study) -> dict[str, Any]:
    """Counts per state, the best trial (or the Pareto set) and the settings."""
    info: dict[str, Any] = {"name": study.settings.get("name"), "counts": study.counts()}
    for key in ("surrogate", "acquisition", "seed", "n_initial", "optimum"):
        info[key] = study.settings.get(key)
    if len(study.objectives) == 1:
        best = study.best()
        info["best"] = None if best is None else {
            "trial": best.id, "params": best.params, "outcomes": best.outcomes,
        }  # fmt: skip
    else:
        info["pareto"] = [{"trial": t.id, "params": t.params, "outcomes": t.outcomes}
                          for t in study.pareto()]  # fmt: skip
    return info


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def _rows(study: Study) -> tuple[list[str], list[list[Any]]]:
    names, outs = study.space.names, study.outcome_names
    header = ["id", "state", "source", *names, *outs, "duration_s", "worker", "error"]
    rows = []
    for t in study.trials():
        outcomes = t.outcomes or {}
        rows.append([t.id, t.state, t.source, *(t.params[n] for n in names),
                     *(outcomes.get(n) for n in outs), t.duration, t.worker, t.error])  # fmt: skip
    return header, rows


def trials_table(study: Study, max_rows: int | None = None) -> str:
    """A plain-text table of the trials (the last ``max_rows`` if given)."""
    header, rows = _rows(study)
    rows = rows[-max_rows:] if max_rows else rows
    cells = [header] + [[_fmt(v) for v in row] for row in rows]
    cells = [[c if len(c) <= 40 else c[:37] + "..." for c in row] for row in cells]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def write_report(study: Study, out: str | os.PathLike[str]) -> list[Path]:
    """Write ``trials.csv`` and the PNG plots to folder ``out``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    header, rows = _rows(study)
    with open(folder / "trials.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    written = [folder / "trials.csv"]
    single = len(study.objectives) == 1
    obj = study.objectives[0]["name"]

    if single:
        curve = best_so_far(study)
        optimum = study.settings.get("optimum")
        ncols = 2 if optimum is not None else 1
        fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4), squeeze=False)
        steps = np.arange(1, len(curve) + 1)
        axes[0, 0].step(steps, curve, where="post")
        if optimum is not None:
            axes[0, 0].axhline(optimum, color="k", ls="--", lw=1, label="optimum")
            axes[0, 0].legend()
            axes[0, 1].semilogy(steps, np.maximum(np.abs(curve - optimum), 1e-12))
            axes[0, 1].set(xlabel="evaluations", ylabel="simple regret", title="regret")
        axes[0, 0].set(xlabel="evaluations", ylabel=f"best {obj}", title="best so far")
        written.append(_save(fig, folder / "best_so_far.png"))

    trials = study.trials(["complete", "failed"])
    d = study.space.dim
    ncols = min(d, 4)
    nrows = -(-d // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False)
    ok = [t for t in trials if t.state == "complete"]
    bad = [t for t in trials if t.state == "failed"]
    y = np.array([t.outcomes[obj] for t in ok])
    top = float(np.max(y)) if len(y) else 1.0
    for i, p in enumerate(study.space.parameters):
        ax = axes.flat[i]
        xs = [study.space.decode(t.x)[p.name] for t in ok]
        if p.to_dict()["type"] == "categorical":
            xs = [p.choices.index(v) for v in xs]
        ax.scatter(xs, y, s=12, alpha=0.7)
        if bad:
            xb = [study.space.decode(t.x)[p.name] for t in bad]
            if p.to_dict()["type"] == "categorical":
                xb = [p.choices.index(v) for v in xb]
            ax.scatter(xb, [top] * len(xb), marker="x", color="red", label="failed")
            ax.legend(fontsize=7)
        if getattr(p, "log", False):
            ax.set_xscale("log")
        ax.set(xlabel=p.name, ylabel=obj if i % ncols == 0 else None)
    for ax in list(axes.flat)[d:]:
        ax.set_visible(False)
    written.append(_save(fig, folder / "objective_vs_inputs.png"))

    if not single:
        names = [o["name"] for o in study.objectives]
        Y = np.array([[t.outcomes[n] for n in names[:2]] for t in ok]).reshape(-1, 2)
        P = np.array([[t.outcomes[n] for n in names[:2]] for t in study.pareto()]).reshape(-1, 2)
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(Y[:, 0], Y[:, 1], s=12, alpha=0.5, label="evaluated")
        ax.scatter(P[:, 0], P[:, 1], s=24, color="C3", label="Pareto set")
        ax.set(xlabel=names[0], ylabel=names[1], title="objectives")
        ax.legend()
        written.append(_save(fig, folder / "pareto.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
