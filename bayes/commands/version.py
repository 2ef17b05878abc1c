"""``bayes version``: print the versions of bayes and its main dependencies."""

from __future__ import annotations

import argparse
import json

HELP = "print the versions of bayes, Python and the main dependencies"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from bayes.experiments import package_versions

    versions = package_versions()
    if args.json:
        print(json.dumps(versions, indent=2))
    else:
        width = max(map(len, versions))
        for name, version in versions.items():
            print(f"{name:<{width}}  {version}")
    return 0
