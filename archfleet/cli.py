"""The `archfleet` command line.

Exit codes: 0 success, 1 an operation or a host failed, 2 bad input. Every failure is one line on stderr.
Each subcommand lives in ``archfleet/commands/<name>.py`` with a ``register(subparsers)`` function that
adds its parser and sets ``handler`` (a function of the parsed arguments returning the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from archfleet import __version__
from archfleet.errors import ArchfleetError, InputError

COMMAND_MODULES = ("init", "lab", "demo", "hosts", "sync", "verify", "images", "spot", "laptop")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but bad usage is one line and exit 2 through InputError."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{self.prog}: {message}")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="archfleet", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"archfleet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"archfleet.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args))
    except ArchfleetError as error:
        print(f"archfleet: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("archfleet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
