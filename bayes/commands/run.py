"""``bayes run``: list or run the registered experiments."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "list (--list) or run a registered experiment, writing results.json and plots"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="experiment to run (see --list)")
    parser.add_argument("--list", action="store_true", help="list experiments and exit")
    parser.add_argument("--quick", action="store_true", help="reduced size (under a minute)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument("--out", default=None, help="output folder (default results/NAME)")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="discard the job results an interrupted run left in OUT/.partial",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--json", action="store_true", help="print results.json to stdout")


def run(args: argparse.Namespace) -> int:
    from bayes.cli import CLIError
    from bayes.experiments import registry, run_experiment

    if args.list:
        experiments = registry()
        width = max((len(n) for n in experiments), default=0)
        for name, exp in experiments.items():
            print(f"{name:<{width}}  {exp.description}")
        return 0
    if not args.name:
        raise CLIError("name an experiment to run, or use --list")
    if args.name not in registry():
        raise CLIError(f"unknown experiment {args.name!r}; see `bayes run --list`")

    from bayes.config import enable_compilation_cache

    enable_compilation_cache()
    record = run_experiment(
        args.name,
        quick=args.quick,
        seed=args.seed,
        out=args.out,
        progress=not args.no_progress,
        resume=not args.fresh,
    )
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        out = record["settings"]["out"]
        print(f"{args.name}: done in {record['timings']['total_s']:.1f} s -> {out}/results.json")
        jobs = record["jobs"]
        if jobs["reused"]:
            print(f"  resumed: {jobs['reused']} of {jobs['total']} jobs from {out}/.partial")
        for key, value in record["results"].items():
            if isinstance(value, int | float | str) or value is None:
                print(f"  {key}: {value}")
        for fig in record["figures"]:
            print(f"  plot: {out}/{fig}", file=sys.stdout)
    return 0
