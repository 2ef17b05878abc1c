"""Per-iteration overhead of the bayes BO loop vs a minimal hand-written BoTorch loop.

Both loops run the same problem from the same scrambled Sobol design, seed
torch identically before each round, fit the same ``SingleTaskGP``
(``Standardize`` outcomes, ``fit_gpytorch_mll``) and optimize the same
``qLogNoisyExpectedImprovement`` with the same ``optimize_acqf`` settings, one
point per round on one torch thread. They therefore visit the same points, and
the time difference is what our loop adds: the SQLite store (one committed
transaction per state change), the executor hop, bookkeeping and the progress
display. The ratio ours / hand-written is reported per iteration; the target
is at most 1.1.

Run: ``python benchmarks/bo.py [--quick]``. Rewrites the ``bo`` section of
docs/benchmarks.md (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section

OPTIONS = {"num_restarts": 4, "raw_samples": 256, "maxiter": 200, "mc_samples": 128}


def ours(problem, n_init: int, iters: int, seed: int, folder: Path) -> dict:
    from bayes.bo import Study, optimize

    study = Study.create(folder / f"ours-{seed}-{time.time_ns()}.db", problem.space,
                         n_initial=n_init, seed=seed, acquisition_options=OPTIONS)  # fmt: skip
    optimize(problem.objective, study, budget=n_init, progress=False)
    fit = acq = 0.0

    def record(study, trial):
        nonlocal fit, acq
        fit += study.last_timings.get("fit_s", 0.0)
        acq += study.last_timings.get("acquisition_s", 0.0)

    t0 = time.perf_counter()
    optimize(problem.objective, study, budget=n_init + iters, progress=False, callback=record)
    total = time.perf_counter() - t0
    X = np.array([t.x for t in study.trials()])
    study.close()
    return {"total": total, "fit": fit, "acq": acq, "X": X}


def hand_written(problem, n_init: int, iters: int, seed: int) -> dict:
    import torch
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.optim import optimize_acqf
    from botorch.sampling import SobolQMCNormalSampler
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from scipy.stats import qmc

    space = problem.space
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        U = qmc.Sobol(space.dim, scramble=True, seed=seed).random(n_init)
    U = space.snap(U)
    X = torch.tensor(U, dtype=torch.float64)
    Y = torch.tensor([[-problem.objective(space.decode(x))] for x in U], dtype=torch.float64)
    bounds = torch.stack([torch.zeros(space.dim), torch.ones(space.dim)]).to(X)
    t0 = time.perf_counter()
    for _ in range(iters):
        with torch.random.fork_rng():
            torch.manual_seed(seed * 1_000_003 + len(X))
            model = SingleTaskGP(X, Y, outcome_transform=Standardize(1))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            model.eval()
            acqf = qLogNoisyExpectedImprovement(
                model, X_baseline=X, prune_baseline=True,
                sampler=SobolQMCNormalSampler(torch.Size([OPTIONS["mc_samples"]])),
            )  # fmt: skip
            cand, _ = optimize_acqf(
                acqf, bounds=bounds, q=1, num_restarts=OPTIONS["num_restarts"],
                raw_samples=OPTIONS["raw_samples"],
                options={"maxiter": OPTIONS["maxiter"], "batch_limit": 5},
            )  # fmt: skip
        x = space.snap(cand.detach().clamp(0, 1).numpy())[0]
        X = torch.cat([X, torch.tensor(x[None, :], dtype=torch.float64)])
        Y = torch.cat([Y, torch.tensor([[-problem.objective(space.decode(x))]])])
    return {"total": time.perf_counter() - t0, "X": X.numpy()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run, no docs update")
    args = parser.parse_args()
    import torch

    from bayes.bo import get_problem

    torch.set_num_threads(1)
    reps, iters = (1, 3) if args.quick else (3, 15)
    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, n_init in (("branin", 5), ("hartmann6", 10)):
            problem = get_problem(name)
            # Warm-up: first calls pay one-off costs (imports, TorchScript, caches).
            hand_written(problem, n_init, 1, 99)
            ours(problem, n_init, 1, 99, Path(tmp))
            t_ours, t_hand, fit, acq, same = [], [], [], [], []
            for r in range(reps):
                # Alternate the order so drifting machine load hits both loops alike.
                res = {}
                for which in ("hand", "ours") if r % 2 else ("ours", "hand"):
                    res[which] = (ours(problem, n_init, iters, r, Path(tmp)) if which == "ours"
                                  else hand_written(problem, n_init, iters, r))  # fmt: skip
                t_ours.append(res["ours"]["total"] / iters)
                t_hand.append(res["hand"]["total"] / iters)
                fit.append(res["ours"]["fit"] / iters)
                acq.append(res["ours"]["acq"] / iters)
                same.append(np.allclose(res["ours"]["X"], res["hand"]["X"], atol=1e-6))
            ratio = float(np.sum(t_ours) / np.sum(t_hand))
            ratios.append(ratio)
            rows.append([name, f"{n_init} + {iters}", reps, float(np.mean(t_hand)),
                         float(np.mean(t_ours)), float(np.mean(fit)), float(np.mean(acq)),
                         float(np.mean(t_ours) - np.mean(fit) - np.mean(acq)), ratio,
                         "yes" if all(same) else "no"])  # fmt: skip
    header = ["problem", "evaluations", "repeats", "hand-written s/iter", "bayes s/iter",
              "of which fit", "of which acquisition", "of which the rest", "ratio",
              "same points"]  # fmt: skip
    table = markdown_table(header, rows)
    print(table)
    if args.quick:
        return
    body = (
        "Per-iteration wall time of `bayes.bo.optimize` (SQLite store, one transaction per "
        "state change, thread executor, bookkeeping) against a minimal hand-written BoTorch "
        "loop doing the same GP fitting and qLogNEI optimization "
        f"(`optimize_acqf`: {OPTIONS['num_restarts']} restarts, {OPTIONS['raw_samples']} raw "
        "samples), one point per round, one torch thread, same seeds. *same points*: both "
        "loops visited identical points, so the ratio is pure loop overhead. Target: ratio "
        "at most 1.1.\n\n" + table + "\n\nRun `python benchmarks/bo.py` to reproduce."
    )
    write_section("bo", "Bayesian optimization loop overhead", body)


if __name__ == "__main__":
    main()
