"""The ``bayes`` command line.

Sub-commands live in :mod:`bayes.commands`, one module each, discovered at
start-up. A command module defines::

    HELP = "one line"
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

and imports nothing heavy at module level, so ``bayes --help`` stays fast.
Errors meant for the user are raised as :class:`CLIError` (or
:class:`bayes.experiments.ExperimentError`): one line on standard error and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["CLIError", "main"]

EXIT_USAGE = 2


class CLIError(Exception):
    """A problem with the user's input, reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: scripts grep for it.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _command_modules() -> dict[str, object]:
    import bayes.commands

    modules = {}
    for info in sorted(pkgutil.iter_modules(bayes.commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bayes.commands.{info.name}")
        modules[getattr(module, "NAME", info.name)] = module
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every discovered sub-command."""
    parser = _Parser(
        prog="bayes",
        description="Bayesian inference, optimization and reproducible experiments.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in _command_modules().items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayes`` console script.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The process exit code.
    """
    from bayes.experiments import ExperimentError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except (CLIError, ExperimentError) as err:
        print(f"bayes {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"bayes {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
