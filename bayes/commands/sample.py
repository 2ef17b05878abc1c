"""``bayes sample``: sample a NumPyro model file and write ``InferenceData`` to NetCDF."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "sample the NumPyro model in MODEL.py (NUTS by default); print the summary, write NetCDF"
METHODS = ("nuts", "hmc", "chees", "smc", "vi")
MASS_MATRIX = {"auto": "auto", "dense": True, "diagonal": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_file", metavar="MODEL.py", help="file defining `model` (and `data`)")
    parser.add_argument(
        "--data", default=None, help="JSON object of named arrays (overrides `data`)"
    )
    parser.add_argument("--method", default="nuts", choices=METHODS, help="default nuts")
    parser.add_argument("--chains", type=int, default=4, help="number of chains (default 4)")
    parser.add_argument("--warmup", type=int, default=1000, help="warmup steps (default 1000)")
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument(
        "--mass-matrix", default=None, choices=tuple(MASS_MATRIX),
        help="NUTS/HMC mass matrix (default auto: dense where warmup finds correlations)",
    )  # fmt: skip
    parser.add_argument("--out", default="run.nc", help="NetCDF output (default run.nc)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file (resumes if present)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--x64", action="store_true", help="sample in 64-bit floating point")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def load_model_file(path: str):
    """Import ``path`` and return ``(model, data)``; user errors raise ``CLIError``."""
    import importlib.util

    from bayes.cli import CLIError

    file = Path(path)
    if not file.is_file():
        raise CLIError(f"model file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"_bayes_model_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise CLIError(f"cannot load {path}: {type(err).__name__}: {err}") from None
    model = getattr(module, "model", None)
    if not callable(model):
        raise CLIError(f"{path} defines no function `model`")
    return model, getattr(module, "data", None)


def load_data_file(path: str) -> dict:
    """Read a JSON object of named arrays; user errors raise ``CLIError``."""
    from bayes.cli import CLIError

    file = Path(path)
    if not file.is_file():
        raise CLIError(f"data file not found: {path}")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CLIError(f"data file {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise CLIError(f"data file {path} must hold a JSON object of named arrays")
    return data


def run(args: argparse.Namespace) -> int:
    from bayes.cli import CLIError

    model, data = load_model_file(args.model_file)
    if args.data is not None:
        data = load_data_file(args.data)
    if data is not None and not isinstance(data, dict):
        raise CLIError(f"`data` in {args.model_file} must be a dict of named arrays")
    if args.x64:
        from bayes.config import enable_x64

        enable_x64()
    import os

    import bayes
    from bayes.diagnostics import summary, summary_json

    options = {}
    if args.mass_matrix is not None:
        if args.method not in ("nuts", "hmc"):
            raise CLIError(f"--mass-matrix is an option of nuts and hmc, not {args.method}")
        options["dense_mass"] = MASS_MATRIX[args.mass_matrix]
    try:
        idata = bayes.sample(
            model, data, method=args.method, num_chains=args.chains, num_warmup=args.warmup,
            num_samples=args.draws, seed=args.seed, progress=not args.no_progress,
            checkpoint=args.checkpoint, **options,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        idata.to_netcdf(str(tmp))
        os.replace(tmp, out)
    except OSError as err:
        raise CLIError(f"cannot write {args.out}: {err.strerror or err}") from None
    if args.json:
        print(json.dumps(summary_json(idata), indent=2))
        return 0
    print(summary(idata).to_string())
    record = summary_json(idata)
    timings = ", ".join(f"{k} {v:.2f}" for k, v in record["timings"].items())
    kinds = idata.posterior.attrs.get("mass_matrix")
    metric = ""
    if kinds is not None:
        counts = {k: json.loads(kinds).count(k) for k in ("dense", "diagonal")}
        metric = "mass matrix " + ", ".join(f"{k} x{n}" for k, n in counts.items() if n) + "; "
    print(f"divergences: {record['divergences']}; {metric}{timings}; written {out}")
    return 0
