"""``bayes report``: the best point, the table of trials and plots of a BO study."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "report a BO study: best point, table of trials, CSV and PNG plots"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="study file written by `bayes optimize`")
    parser.add_argument("--out", default=None, help="folder for plots and CSV (STORE_report)")
    parser.add_argument("--rows", type=int, default=None, help="show only the last N trials")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from bayes.cli import CLIError

    store = Path(args.store)
    if not store.exists():
        raise CLIError(f"no study store at {args.store!r}")
    from bayes.bo.report import summary, trials_table, write_report
    from bayes.bo.store import StoreError
    from bayes.bo.study import Study

    try:
        study = Study.load(store)
    except StoreError as err:
        raise CLIError(str(err)) from None
    out = Path(args.out) if args.out else store.with_name(store.stem + "_report")
    info = summary(study)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(trials_table(study, args.rows))
        print(f"\ncounts: {info['counts']}")
        if info.get("best"):
            print(f"best trial {info['best']['trial']}: {info['best']['outcomes']} "
                  f"at {info['best']['params']}")  # fmt: skip
        for item in info.get("pareto", []):
            print(f"Pareto trial {item['trial']}: {item['outcomes']}")
    for path in write_report(study, out):
        print(f"wrote {path}")
    return 0
