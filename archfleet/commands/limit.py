"""The one ``--limit`` of every command that reaches hosts: host or group names, comma-separated, and the option
may be repeated (``--limit amd64,arm64`` is ``--limit amd64 --limit arm64``)."""

from __future__ import annotations

import argparse

from archfleet.errors import InputError

LIMIT_METAVAR = "NAME[,NAME...]"


def add_limit_argument(parser: argparse.ArgumentParser, what: str = "hosts") -> None:
    parser.add_argument("--limit", action="append", metavar=LIMIT_METAVAR,
                        help=f"only these {what}: host or group names, comma-separated (repeatable)")


def limit_names(values: list[str] | None) -> list[str] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (first-seen order, once each); None when no ``--limit`` was given.
    An empty name (``a,,b`` or ``--limit ''``) is bad input rather than "every host"."""
    if not values:
        return None
    names: list[str] = []
    for value in values:
        for word in value.split(","):
            word = word.strip()
            if not word:
                raise InputError(f"--limit: an empty name in {value!r} (host or group names, comma-separated)")
            if word not in names:
                names.append(word)
    return names


def limit_text(values: list[str] | None) -> str | None:
    """The same names as one comma-separated string (what archfleet.sync.scope.hosts_in_scope reads)."""
    names = limit_names(values)
    return ",".join(names) if names else None


def parallel_count(text: str) -> int:
    """``--parallel``'s value: a host count of 1 or more (argparse reports anything else as bad input, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a host count (1 or more), got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a host count (1 or more), got {value}")
    return value


def add_parallel_argument(parser: argparse.ArgumentParser) -> None:
    """``--parallel N`` for a command that reaches many hosts; read it with ``parallel_of(fleet, args.parallel)``
    (archfleet.sync.scope), which falls back on the fleet file's ``parallel:``, then on the open-file limit."""
    parser.add_argument("--parallel", type=parallel_count, metavar="N",
                        help="at most N hosts at a time (default: the fleet file's `parallel:`, else what the "
                             "open-file limit allows, 48 under `ulimit -n 256`)")
