"""``bayes showcase``: the README's main job, a short end-to-end tour."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the end-to-end showcase: fit models, print summaries, save plots"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="results", help="results folder (default results)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from bayes.cli import CLIError
    from bayes.experiments import ExperimentError, _prepare_out
    from bayes.showcase import run_showcase

    try:
        _prepare_out(Path(args.out))
    except ExperimentError as err:
        raise CLIError(str(err)) from None
    run_showcase(args.out, seed=args.seed, progress=not args.no_progress)
    return 0
