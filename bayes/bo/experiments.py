"""Registered experiments of the BO loop (discovered through ``EXTRA_MODULES``).

Light at import: torch and BoTorch load inside the experiment function.
"""

from __future__ import annotations

from bayes.experiments import RunContext, experiment

# problem -> (initial design, total evaluations)
_FULL = {"branin": (5, 30), "hartmann6": (10, 50), "ackley10": (10, 50)}
_QUICK = {"branin": (5, 15)}


@experiment(
    "bo-gp",
    "GP-qLogEI vs Sobol random search on Branin, Hartmann6, Ackley-10: simple regret +- s.e.",
)
def bo_gp(ctx: RunContext) -> dict:
    import tempfile
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from bayes.bo.loop import optimize
    from bayes.bo.problems import get_problem
    from bayes.bo.report import best_so_far
    from bayes.bo.study import Study

    problems = _QUICK if ctx.quick else _FULL
    num_seeds = 3 if ctx.quick else 8
    acq = {"num_restarts": 4, "raw_samples": 128} if ctx.quick else {}
    runs = [(name, s) for name in problems for s in range(num_seeds)]
    curves: dict[str, dict[str, list]] = {n: {"gp": [], "sobol": []} for n in problems}
    with tempfile.TemporaryDirectory() as tmp:
        for name, s in ctx.track(runs, total=len(runs), desc="bo-gp"):
            problem = get_problem(name)
            n_init, budget = problems[name]
            seed = ctx.seed * 1000 + s
            study = Study.create(
                Path(tmp) / f"{name}-{s}.db", problem.space, n_initial=n_init, seed=seed,
                acquisition="qlogei", acquisition_options=acq, optimum=problem.optimum,
            )  # fmt: skip
            optimize(problem.objective, study, budget, batch_size=1, progress=False)
            curves[name]["gp"].append(best_so_far(study) - problem.optimum)
            # Same seed, same scrambled Sobol sequence: the first n_init points coincide.
            sobol = Study.create(Path(tmp) / f"{name}-{s}-sobol.db", problem.space,
                                 n_initial=budget, seed=seed)  # fmt: skip
            y = [problem.objective(t.params) for t in sobol.ask(budget)]
            curves[name]["sobol"].append(np.minimum.accumulate(y) - problem.optimum)
            study.close()
            sobol.close()

    results: dict[str, dict] = {}
    fig, axes = plt.subplots(1, len(problems), figsize=(4.5 * len(problems), 3.6), squeeze=False)
    for ax, name in zip(axes[0], problems):
        n_init, budget = problems[name]
        entry: dict = {"n_initial": n_init, "budget": budget, "num_seeds": num_seeds}
        for method, color in (("gp", "C0"), ("sobol", "C1")):
            R = np.asarray(curves[name][method], dtype=np.float64)
            mean = R.mean(0)
            se = R.std(0, ddof=1) / np.sqrt(len(R))
            steps = np.arange(1, budget + 1)
            ax.plot(steps, mean, color=color, label="GP-qLogEI" if method == "gp" else "Sobol")
            ax.fill_between(steps, mean - 2 * se, mean + 2 * se, color=color, alpha=0.2)
            entry[method] = {"regret_mean": mean, "regret_se": se,
                             "final_regret_mean": float(mean[-1]),
                             "final_regret_se": float(se[-1])}  # fmt: skip
        if name == "hartmann6":
            entry["gp_regret_at_30"] = float(np.mean(np.asarray(curves[name]["gp"])[:, 29]))
        final = {m: entry[m]["final_regret_mean"] for m in ("gp", "sobol")}
        entry["gp_beats_sobol"] = final["gp"] < final["sobol"]
        ax.axvline(n_init + 0.5, color="k", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set(title=name, xlabel="evaluations", ylabel="simple regret (mean ± 2 s.e.)")
        ax.legend()
        results[name] = entry
    ctx.savefig(fig, "bo_gp_regret")
    results["gp_beats_sobol_everywhere"] = all(results[n]["gp_beats_sobol"] for n in problems)
    return results
