"""`archfleet rollback SERVICE [--to RELEASE] [--limit NAME[,NAME...]] [--dry] [--json] [--lock-wait S]
[--message T]`: put a recorded release of one service back on its hosts, by digest, through the sync's own rollout
(pull, canary, batches, circuit breaker, rollback on failure, finalize and a release of its own: docs/releases.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from archfleet.commands.limit import add_limit_argument
from archfleet.commands.lock import add_lock_arguments, run_info
from archfleet.commands.releases import scope
from archfleet.commands.sync import add_fleet_argument
from archfleet.errors import InputError
from archfleet.run import say


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rollback", help="put the previous (or a named) release of a service back on "
                                                    "its hosts, with the canary and batches of a sync")
    parser.add_argument("service", help="the service to roll back")
    parser.add_argument("--to", metavar="RELEASE", help="this release (an id `archfleet releases` lists); default: "
                                                        "on each host, the newest retained one before what it runs "
                                                        "that differs from it")
    add_fleet_argument(parser)
    add_limit_argument(parser)
    parser.add_argument("--dry", action="store_true", help="print the plan and change nothing")
    parser.add_argument("--json", action="store_true", help="print the plan and results as one JSON document")
    add_lock_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from archfleet.services.desired import short
    from archfleet.sync.outcome import Outcome
    from archfleet.sync.releases import Target, desired_from_entry, read_releases, rollback_target
    from archfleet.sync.report import FAILED, SyncReport
    from archfleet.sync.run import sync

    fleet, names = scope(args, "rollback")
    service = args.service
    if service not in fleet.services:
        raise InputError(f"{fleet.path}: rollback: no service {service!r} in the fleet file "
                         f"(declared: {', '.join(sorted(fleet.services)) or 'none'})")
    if not names:
        raise InputError(f"rollback: no host in scope runs {service}")
    targets: dict[str, Target] = {}
    unknown: dict[str, str] = {}
    failed: dict[str, str] = {}
    for host, value in sorted(read_releases(fleet, names, say).items()):
        if isinstance(value, Outcome):
            failed[host] = value.reason
            continue
        target = rollback_target(value, service, args.to)
        if isinstance(target, str):
            (unknown if args.to else failed)[host] = target
            continue
        missing = value.missing(target.entry)
        if missing:
            failed[host] = f"release {target.release}'s file versions are gone: {missing[0]} (nothing changed there)"
            continue
        targets[host] = target
    if unknown:
        raise InputError(f"rollback: --to {args.to}: " + "; ".join(f"{h}: {r}" for h, r in sorted(unknown.items())))
    releases = sorted({t.release for t in targets.values()})
    command = f"rollback {service} to {releases[0] if len(releases) == 1 else 'the release before'}"
    for host, target in sorted(targets.items()):
        say(f"[{host}] {service}: back to release {target.release} ({target.entry['tag']}, "
            f"{short(target.entry['digest'])})")
    report = SyncReport(args.dry)
    if targets:
        override = {host: {service: desired_from_entry(service, t.entry)} for host, t in targets.items()}
        report = sync(fleet, dry=args.dry, prune=False, limit=",".join(sorted(targets)), say=say,
                      run=run_info(args, command), override=override,
                      only=frozenset({service}))
    for host, reason in failed.items():
        entry = report.host(host)
        entry.status, entry.reason = FAILED, reason
    print(report.as_json() if args.json else "\n".join(report.lines("rollback")))
    sys.stdout.flush()
    return 0 if report.ok else 1
