"""``bayes diagnose``: summary, plain-language warnings and plots of a saved run."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "summarize a NetCDF run: table, convergence warnings, trace/rank/pair plots"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_file", metavar="RUN.nc", help="InferenceData in NetCDF")
    parser.add_argument("--plots", default=None, metavar="DIR", help="write PNG plots to DIR")


def run(args: argparse.Namespace) -> int:
    from bayes.cli import CLIError

    path = Path(args.run_file)
    if not path.is_file():
        raise CLIError(f"run file not found: {args.run_file}")
    import arviz as az

    from bayes.diagnostics import convergence_warnings, save_plots, summary

    try:
        idata = az.from_netcdf(str(path))
    except Exception as err:
        raise CLIError(f"cannot read {args.run_file} as InferenceData: {err}") from None
    if "posterior" not in idata.groups():
        raise CLIError(f"{args.run_file} has no posterior group")
    print(summary(idata).to_string())
    warnings = convergence_warnings(idata)
    for line in warnings:
        print(f"warning: {line}")
    if not warnings:
        print("no convergence problems found (R-hat, ESS, divergences, E-BFMI)")
    if args.plots:
        for file in save_plots(idata, args.plots):
            print(f"plot: {file}")
    return 0
