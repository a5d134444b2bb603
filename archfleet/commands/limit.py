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
