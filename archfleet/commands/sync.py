"""`archfleet sync [--dry] [--prune] [--json] [--limit NAME[,NAME...]] [-f FLEET]`: every host runs its declared
services; only what drifted changes, rolled out behind a canary (archfleet.sync.rollout)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from archfleet.commands.limit import add_limit_argument, add_parallel_argument, limit_text
from archfleet.commands.lock import add_lock_arguments, run_info
from archfleet.fleet import Fleet, default_fleet_path, load_fleet
from archfleet.run import say
from archfleet.sync.report import sync_title
from archfleet.sync.run import sync


def add_fleet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--fleet", type=Path, help="the fleet file (default: $ARCHFLEET_FLEET or ./fleet.yaml)")


def load_fleet_for_services(args: argparse.Namespace, command: str) -> Fleet:
    """The fleet file, loaded and validated; a command about services needs a `services:` section."""
    from archfleet.errors import InputError

    path = args.fleet or default_fleet_path()
    fleet = load_fleet(path)
    if not fleet.services_declared:
        raise InputError(f"{path}: {command}: the file has no `services:` section (an empty or truncated file?); "
                         "nothing was changed. Write `services: {}` to run no services")
    return fleet


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sync", help="run every declared service on its hosts; change only what drifted")
    add_fleet_argument(parser)
    parser.add_argument("--dry", action="store_true", help="print the plan (what would be pulled, created, "
                                                           "recreated, removed) and change nothing")
    parser.add_argument("--prune", action="store_true", help="also remove containers of services no longer declared "
                                                             "for a host (without it they are only listed)")
    add_limit_argument(parser)
    add_parallel_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the plan and results as one JSON document")
    add_lock_arguments(parser)
    parser.set_defaults(handler=run_sync)


def run_sync(args: argparse.Namespace) -> int:
    fleet = load_fleet_for_services(args, "sync")
    say(sync_title(len(fleet.services), str(fleet.path), str(fleet.inventory), args.dry))
    report = sync(fleet, dry=args.dry, prune=args.prune, limit=limit_text(args.limit), say=say,
                  parallel=getattr(args, "parallel", None),  # spot up --sync's Namespace has none
                  run=run_info(args, "sync"))
    if args.json:
        print(report.as_json())
    else:
        print("\n".join(report.lines()))
    sys.stdout.flush()
    return 0 if report.ok else 1
