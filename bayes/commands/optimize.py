"""``bayes optimize``: run or resume a durable BO study (objective file or built-in problem)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "optimize an expensive objective with Bayesian optimization (resumable, parallel)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "objective", nargs="?",
        help="Python file defining `space` and `objective(params) -> float | dict` "
        "(optional: `objectives`, `constraints`, `optimum`)",
    )  # fmt: skip
    parser.add_argument("--problem", help="a built-in problem instead (e.g. branin, hartmann6)")
    parser.add_argument("--store", required=True, help="study file (SQLite); resumed if it exists")
    parser.add_argument("--budget", type=int, default=50, help="total finished evaluations (50)")
    parser.add_argument("--batch", type=int, default=1, help="evaluations running at once (1)")
    parser.add_argument("--workers", type=int, default=None, help="worker threads (--batch)")
    parser.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786")
    parser.add_argument("--surrogate", help="surrogate model (gp, saas, ...); default gp")
    parser.add_argument(
        "--surrogate-option", action="append", default=[], metavar="KEY=VALUE",
        help="surrogate option (repeatable; VALUE read as JSON, else text), e.g. width=20",
    )  # fmt: skip
    parser.add_argument("--acquisition", help="qlognei (default), qlogei, qucb, ts, qlognehvi")
    parser.add_argument("--seed", type=int, default=0, help="seed of a new study (0)")
    parser.add_argument("--n-initial", type=int, default=None, help="Sobol initial design size")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per evaluation")
    parser.add_argument("--time-budget", type=float, default=None, help="stop after N seconds")
    parser.add_argument("--num-restarts", type=int, default=None, help="acquisition restarts")
    parser.add_argument("--raw-samples", type=int, default=None, help="acquisition raw samples")
    parser.add_argument("--noise", type=float, default=0.0, help="noise sd of a built-in problem")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds per built-in evaluation")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress display")


def load_objective_file(path: str) -> Any:
    """Import ``path`` as a module; it must define ``space`` and ``objective``."""
    import importlib.util

    from bayes.cli import CLIError

    file = Path(path)
    if not file.is_file():
        raise CLIError(f"objective file {path!r} not found")
    name = f"bayes_objective_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise CLIError(f"importing {path!r} failed: {type(err).__name__}: {err}") from None
    missing = [n for n in ("space", "objective") if not hasattr(module, n)]
    if missing:
        raise CLIError(f"{path!r} does not define {' and '.join(missing)}")
    try:  # workers of a Dask cluster cannot import this file: ship it by value
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    except Exception:
        pass
    return module


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["width=20", "depths=[1,2]"]`` -> ``{"width": 20, "depths": [1, 2]}``."""
    import json

    from bayes.cli import CLIError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--surrogate-option expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _study(args: argparse.Namespace) -> tuple[Any, Any]:
    from bayes.bo.space import Space, SpaceError
    from bayes.bo.store import StoreError
    from bayes.bo.study import Study, StudyError
    from bayes.cli import CLIError

    if bool(args.objective) == bool(args.problem):
        raise CLIError("give an objective file or --problem NAME (exactly one)")
    settings: dict[str, Any] = {}
    if args.problem:
        from bayes.bo.problems import get_problem

        try:
            problem = get_problem(args.problem, noise_std=args.noise, sleep=args.sleep)
        except ValueError as err:
            raise CLIError(str(err)) from None
        space, objective = problem.space, problem.objective
        settings = {"objectives": problem.objectives, "optimum": problem.optimum,
                    "ref_point": problem.ref_point, "name": problem.name}  # fmt: skip
    else:
        module = load_objective_file(args.objective)
        try:
            space = module.space if isinstance(module.space, Space) else Space(module.space)
        except SpaceError as err:
            raise CLIError(f"{args.objective}: {err}") from None
        objective = module.objective
        for key in ("objectives", "constraints", "optimum", "ref_point"):
            if hasattr(module, key):
                settings[key] = getattr(module, key)
    acq = {k: v for k, v in (("num_restarts", args.num_restarts),
                             ("raw_samples", args.raw_samples)) if v is not None}  # fmt: skip
    surrogate_options = parse_options(args.surrogate_option)
    store = Path(args.store)
    try:
        if store.exists():
            study = Study.load(store)
            if study.space != space:
                raise CLIError(f"{args.store} holds a study over another search space")
            given = (("surrogate", args.surrogate), ("acquisition", args.acquisition))
            changes = {k: v for k, v in given if v is not None}
            if acq:
                changes["acquisition_options"] = {**study.settings["acquisition_options"], **acq}
            if surrogate_options:
                changes["surrogate_options"] = surrogate_options
            elif args.surrogate and args.surrogate != study.settings["surrogate"]:
                changes["surrogate_options"] = {}  # the old ones belong to the old surrogate
            if changes:
                study.update_settings(**changes)
            return study, objective
        study = Study.create(
            store, space, surrogate=args.surrogate or "gp", acquisition=args.acquisition,
            surrogate_options=surrogate_options, acquisition_options=acq,
            n_initial=args.n_initial, seed=args.seed, **settings,
        )  # fmt: skip
    except (StoreError, StudyError, SpaceError) as err:
        raise CLIError(str(err)) from None
    return study, objective


def run(args: argparse.Namespace) -> int:
    import concurrent.futures as cf

    from bayes.bo.loop import optimize
    from bayes.bo.report import summary
    from bayes.bo.store import StoreError
    from bayes.cli import CLIError

    if args.budget < 1 or args.batch < 1 or (args.workers is not None and args.workers < 1):
        raise CLIError("--budget, --batch and --workers must be at least 1")
    study, objective = _study(args)
    resumed = sum(study.counts().values())
    if resumed:
        print(f"resuming {args.store}: {study.counts()}", file=sys.stderr)
    client = None
    if args.scheduler:
        try:
            from distributed import Client

            client = Client(args.scheduler, timeout="20s")
        except Exception as err:
            raise CLIError(f"cannot connect to scheduler {args.scheduler}: {err}") from None
        executor: Any = client
    else:
        executor = cf.ThreadPoolExecutor(args.workers or args.batch, "bayes-bo")
    try:
        optimize(
            objective, study, args.budget, batch_size=args.batch, executor=executor,
            timeout=args.timeout, time_budget=args.time_budget, progress=not args.no_progress,
        )  # fmt: skip
    except StoreError as err:
        raise CLIError(str(err)) from None
    finally:
        if client is not None:
            client.close()
        else:
            executor.shutdown(wait=False, cancel_futures=True)
    info = summary(study)
    counts = info["counts"]
    print(
        f"{args.store}: {counts['complete']} complete, {counts['failed']} failed, "
        f"{counts['abandoned']} abandoned"
    )
    if "best" in info and info["best"] is not None:
        best = info["best"]
        print(f"best trial {best['trial']}: {best['outcomes']} at {best['params']}")
    elif "pareto" in info:
        print(f"Pareto set: {len(info['pareto'])} trials (see `bayes report {args.store}`)")
    return 0
