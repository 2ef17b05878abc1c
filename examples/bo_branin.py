"""Durable, parallel Bayesian optimization of Branin, then a report.

Runs GP-qLogNEI with two evaluations at a time on the Branin function
(minimum 0.397887), keeps the study in ``bo_branin.db`` (run the script again
to resume it) and writes the report plots to ``bo_branin_report/``.

    python examples/bo_branin.py [--quick] [--budget N] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bayes.bo import Study, get_problem, optimize
from bayes.bo.report import summary, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smallest size (8 evaluations)")
    parser.add_argument("--budget", type=int, default=30, help="evaluations (30)")
    parser.add_argument("--out", default=".", help="folder for the study and report")
    args = parser.parse_args()

    problem = get_problem("branin", sleep=0.05)  # pretend each evaluation is expensive
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bo_branin.db"
    budget = 8 if args.quick else args.budget
    acq = {"num_restarts": 2, "raw_samples": 32} if args.quick else {}
    if path.exists():
        study = Study.load(path)
        print(f"resuming {path}: {study.counts()}")
    else:
        study = Study.create(path, problem.space, n_initial=6, seed=0, optimum=problem.optimum,
                             acquisition_options=acq)  # fmt: skip
    optimize(problem.objective, study, budget=budget, batch_size=2)
    info = summary(study)
    print(f"best {info['best']['outcomes']['y']:.4f} at {info['best']['params']}")
    print(f"known minimum {problem.optimum}; trials per state: {info['counts']}")
    for plot in write_report(study, folder / "bo_branin_report"):
        print(f"wrote {plot}")


if __name__ == "__main__":
    main()
