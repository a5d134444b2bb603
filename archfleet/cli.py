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
from archfleet.commands.examples import COMMAND_ORDER, add_examples
from archfleet.errors import ArchfleetError, InputError

COMMAND_MODULES = COMMAND_ORDER  # --help lists them in this order (archfleet.commands.examples)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but bad usage is one line and exit 2 through InputError."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{self.prog}: {message}")


def commands_for(argv: Sequence[str]) -> tuple[str, ...]:
    """The command modules to register: only the named command's (a command's module may import what only it
    needs, such as the Docker SDK for `images`; `archfleet sync` should not pay for it), or every one for
    `archfleet`, `--help`, `--version` and an unknown command (whose error lists them all)."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return (first,) if first in COMMAND_MODULES else COMMAND_MODULES


def build_parser(argv: Sequence[str] | None = None) -> ArgumentParser:
    parser = ArgumentParser(prog="archfleet", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"archfleet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    subparsers.required = True
    for name in COMMAND_MODULES if argv is None else commands_for(argv):
        importlib.import_module(f"archfleet.commands.{name}").register(subparsers)
    add_examples(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(arguments).parse_args(arguments)
        return int(args.handler(args))
    except ArchfleetError as error:
        print(f"archfleet: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("archfleet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
