"""`archfleet releases [SERVICE] [--last N] [--limit NAME[,NAME...]] [-f FLEET] [--json]`: the releases recorded on
every host, fleet-wide, newest first (docs/releases.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from archfleet.commands.limit import add_limit_argument, limit_text
from archfleet.commands.sync import add_fleet_argument, load_fleet_for_services
from archfleet.errors import InputError
from archfleet.run import say
from archfleet.table import format_table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("releases", help="the releases recorded on the hosts: who changed what, when, "
                                                    "which one each host runs and which can be rolled back to")
    parser.add_argument("service", nargs="?", help="only releases of this service, with its digest per platform")
    parser.add_argument("--last", type=int, metavar="N", help="only the newest N releases")
    add_fleet_argument(parser)
    add_limit_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the releases and hosts as one JSON document")
    parser.set_defaults(handler=run)


def scope(args: argparse.Namespace, command: str) -> tuple[Any, list[str]]:
    """The fleet and the hosts a command about one service (or all) reaches: those of ``--limit`` that run it."""
    from archfleet.sync.scope import hosts_in_scope, placement_of

    fleet = load_fleet_for_services(args, command)
    if fleet.hosts is None:
        raise InputError(f"{fleet.path}: no `inventory:`: no hosts to ask")
    names = hosts_in_scope(fleet, limit_text(args.limit))
    service = getattr(args, "service", None)
    if service is not None and service in fleet.services:
        placement = placement_of(fleet)
        names = [h for h in names if any(spec.name == service for spec in placement.services_on(h))]
    return fleet, names


def run(args: argparse.Namespace) -> int:
    from archfleet.sync.outcome import Outcome
    from archfleet.sync.releases import HostReleases, current_release, read_releases, release_rows

    if args.last is not None and args.last < 1:
        raise InputError(f"--last: expected 1 or more, got {args.last}")
    fleet, names = scope(args, "releases")
    if not names:
        raise InputError(f"releases: no host in scope runs {args.service}" if args.service else
                         "releases: no host in scope")
    values = read_releases(fleet, names, say)
    hosts: dict[str, HostReleases] = {h: v for h, v in values.items() if not isinstance(v, Outcome)}
    failed = {h: v.reason for h, v in values.items() if isinstance(v, Outcome)}
    rows = release_rows(hosts, args.service, args.last)
    if args.json:
        print(json.dumps({
            "service": args.service, "releases": [row.as_json() for row in rows],
            "hosts": {name: {"ok": name not in failed, "reason": failed.get(name, ""),
                             "current": current_release(hosts[name], args.service) if name in hosts else None}
                      for name in sorted(values)},
        }, indent=2))
    else:
        print(releases_table(rows, args.service, sorted(hosts)))
        for name in sorted(hosts):
            print(f"releases\t{name}\truns {current_release(hosts[name], args.service) or 'no recorded release'}")
        for name, reason in sorted(failed.items()):
            print(f"releases\t{name}\tFAILED: {reason}")
    sys.stdout.flush()
    return 1 if failed else 0


def host_list(names: list[str], every: list[str]) -> str:
    if names and sorted(names) == every:
        return "all"
    return ",".join(names) or "-"


def releases_table(rows: list[Any], service: str | None, every: list[str]) -> str:
    headings = ["RELEASE", "TIME", "WHO", "COMMAND", "MESSAGE", "HOSTS", *(["DIGESTS"] if service else []),
                "RUNNING ON", "RETAINED ON"]
    table = []
    for row in rows:
        digests = ", ".join(f"{platform.split('/', 1)[-1]} {digest.split(':', 1)[-1][:12]}"
                            for platform, digest in sorted(row.digests.items()))
        table.append([row.id, row.time, row.operator, row.command, row.message or "-", host_list(row.hosts, every),
                      *([digests] if service else []), host_list(row.current, every),
                      host_list(row.retained, every)])
    if not table:
        return f"no releases recorded{f' of {service}' if service else ''} on the hosts in scope"
    return format_table(headings, table)
