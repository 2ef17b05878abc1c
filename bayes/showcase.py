"""The main job: a short end-to-end tour on embedded defaults.

``bayes showcase`` (what ``make demo`` runs) fits a model, prints the ArviZ
summary and writes plots to a results folder. It uses local files only.
Later layers add their step to :data:`STEPS`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["STEPS", "run_showcase"]


def _step_posteriordb(out: Path, *, seed: int, progress: bool) -> None:
    """bayes.sample (NUTS) on posteriordb's eight schools, checked against the reference."""
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import bayes
    from bayes import posteriordb

    name = "eight_schools-eight_schools_noncentered"
    module = posteriordb.load_model(name)
    idata = bayes.sample(module.model, module.data, num_chains=4, num_warmup=500,
                         num_samples=500, seed=seed, progress=progress)  # fmt: skip
    print("\nEight schools (non-centred, posteriordb), bayes.sample NUTS, 4 chains x 500 draws:")
    print(az.summary(idata, var_names=["mu", "tau", "theta"]).to_string())
    z = posteriordb.z_scores(idata, name)
    print(f"largest |z| against the posteriordb reference means: {max(map(abs, z.values())):.2f}")
    attrs = idata.posterior.attrs
    print(f"compile {attrs['compile_s']:.1f} s, warmup {attrs['warmup_s']:.2f} s, "
          f"sampling {attrs['sampling_s']:.2f} s, divergences {attrs['divergences']}")  # fmt: skip
    az.plot_trace(idata, var_names=["mu", "tau"])
    plt.gcf().savefig(out / "eight_schools_trace.png", dpi=100, bbox_inches="tight")
    plt.close("all")
    az.plot_rank(idata, var_names=["mu", "tau"])
    plt.gcf().savefig(out / "eight_schools_rank.png", dpi=100, bbox_inches="tight")
    plt.close("all")


def _step_bo(out: Path, *, seed: int, progress: bool) -> None:
    """A short durable BO loop on Branin; the study lives in a SQLite file (rerun: resumes)."""
    from bayes.bo import Study, get_problem, optimize
    from bayes.bo.report import summary, write_report

    problem = get_problem("branin")
    path = out / "bo_branin.db"
    if path.exists():
        study = Study.load(path)
    else:
        study = Study.create(
            path, problem.space, n_initial=6, seed=seed, optimum=problem.optimum,
            acquisition_options={"num_restarts": 4, "raw_samples": 128},
        )  # fmt: skip
    optimize(problem.objective, study, budget=12, batch_size=2, progress=progress)
    best = summary(study)["best"]
    print(f"\nBayesian optimization of Branin (study {path}, 12 evaluations, 2 at a time):")
    print(f"best {best['outcomes']['y']:.4f} at {best['params']} (known minimum {problem.optimum})")
    plots = write_report(study, out / "bo_branin")
    print("BO report: " + ", ".join(str(p) for p in plots))
    study.close()


#: Ordered steps of the showcase: (title, function(out, seed=, progress=)).
STEPS: list[tuple[str, Callable[..., None]]] = [
    ("Eight schools (posteriordb) with bayes.sample NUTS", _step_posteriordb),
    ("Bayesian optimization of Branin (durable SQLite study)", _step_bo),
]


def run_showcase(out: str | Path = "results", *, seed: int = 0, progress: bool = True) -> Path:
    """Run every showcase step, writing plots under ``out``.

    Args:
        out: Results folder (created if missing).
        seed: Master seed.
        progress: Show progress bars.

    Returns:
        The results folder.
    """
    from bayes.config import enable_compilation_cache

    enable_compilation_cache()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (title, step) in enumerate(STEPS, 1):
        print(f"\n[{i}/{len(STEPS)}] {title}", file=sys.stderr, flush=True)
        step(folder, seed=seed, progress=progress)
    plots = sorted(p.name for p in folder.glob("*.png"))
    print(f"\nPlots written to {folder}/: {', '.join(plots)}")
    return folder
