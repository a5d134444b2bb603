"""`archfleet lock status | release`: every host's fleet lock (docs/lock.md), and breaking a lock whose holder is
gone. ``add_lock_arguments`` gives every command that changes hosts its ``--lock-wait`` and ``--message``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from archfleet.commands.limit import add_limit_argument, limit_text
from archfleet.fleet import Fleet
from archfleet.operator import RunInfo


def add_lock_arguments(parser: argparse.ArgumentParser) -> None:
    """``--lock-wait SECONDS`` and ``--message TEXT`` of a command that changes hosts; ``run_info(args, command)``
    makes the run's RunInfo of them."""
    parser.add_argument("--lock-wait", type=non_negative_seconds, default=0.0, metavar="SECONDS",
                        help="when a host is locked by another run, try again for up to SECONDS (default: refuse "
                             "at once)")
    parser.add_argument("--message", metavar="TEXT", help="why this run changes hosts: shown to whoever finds the "
                                                          "hosts locked (archfleet lock status)")


def non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def run_info(args: argparse.Namespace, command: str) -> RunInfo:
    """The RunInfo of a command given ``add_lock_arguments``'s options (a Namespace made by another command, as
    ``spot up --sync`` makes sync's, may lack them: no message, no wait)."""
    return RunInfo(command, message=getattr(args, "message", None) or None,
                   lock_wait=getattr(args, "lock_wait", 0.0) or 0.0)


def register(subparsers: Any) -> None:
    from archfleet.commands.sync import add_fleet_argument  # here: sync's module imports add_lock_arguments

    parser = subparsers.add_parser("lock", help="the fleet lock: who holds each host now; break a lock whose "
                                                "holder is gone")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    status = actions.add_parser("status", help="every host's lock: free, or held by whom, for what, since when")
    add_fleet_argument(status)
    add_limit_argument(status)
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.set_defaults(handler=run_status)
    release = actions.add_parser("release", help="break locks whose holder is gone (the host rebooted, or the lock "
                                                 "expired), after saying what it breaks")
    add_fleet_argument(release)
    add_limit_argument(release)
    release.add_argument("--force", action="store_true", help="also break live locks (their run may still be "
                                                              "changing the host)")
    release.set_defaults(handler=run_release)


def read_locks(fleet: Fleet, names: list[str]) -> dict[str, Any]:
    """Every named host's lock, read in parallel: host -> HostLock, or Outcome (unreachable)."""
    from archfleet.sync.hosts import HostSession
    from archfleet.sync.lock import read_locks_of

    session = HostSession(fleet.hosts, int(fleet.timeouts.connect))
    try:
        return read_locks_of(session, names, fleet.timeouts.connect + fleet.timeouts.facts)
    finally:
        session.disconnect()


def status_line(host: str, lock: Any) -> str:
    from archfleet.sync.outcome import Outcome

    if isinstance(lock, Outcome):
        return f"{host}\tunreachable: {lock.reason}"
    if not lock.record:
        return f"{host}\tfree"
    line = f"{host}\tlocked by {lock.holder()}, run {lock.record.get('token') or '?'}"
    if lock.stale:
        line += f"; stale: {lock.stale}"
    return line


def run_status(args: argparse.Namespace) -> int:
    from archfleet.commands.hosts import fleet_with_hosts
    from archfleet.sync.outcome import Outcome
    from archfleet.sync.scope import hosts_in_scope

    fleet = fleet_with_hosts(args)
    names = hosts_in_scope(fleet, limit_text(args.limit))
    locks = read_locks(fleet, names)
    if args.json:
        print(json.dumps({host: {"state": "unreachable", "reason": lock.reason} if isinstance(lock, Outcome)
                          else lock.as_json() for host, lock in sorted(locks.items())}, indent=2))
    else:
        for host in sorted(locks):
            print(status_line(host, locks[host]))
    sys.stdout.flush()
    return 1 if any(isinstance(lock, Outcome) for lock in locks.values()) else 0


def run_release(args: argparse.Namespace) -> int:
    from archfleet.commands.hosts import fleet_with_hosts
    from archfleet.sync.hosts import HostSession
    from archfleet.sync.lock import break_locks, read_locks_of
    from archfleet.sync.outcome import Outcome
    from archfleet.sync.scope import hosts_in_scope

    fleet = fleet_with_hosts(args)
    names = hosts_in_scope(fleet, limit_text(args.limit))
    bound = fleet.timeouts.connect + fleet.timeouts.facts
    session = HostSession(fleet.hosts, int(fleet.timeouts.connect))
    failed = False
    try:
        locks = read_locks_of(session, names, bound)
        breaking: dict[str, str] = {}  # host -> the token of the lock shown
        for host, lock in sorted(locks.items()):
            if isinstance(lock, Outcome):
                print(f"{host}\tunreachable: {lock.reason}")
                failed = True
            elif not lock.record:
                print(f"{host}\tfree")
            elif lock.stale or args.force:
                why = f"stale: {lock.stale}" if lock.stale else "live: --force"
                print(f"{host}\tbreaking the lock of {lock.holder()} ({why})")
                breaking[host] = lock.record.get("token", "")
            else:
                print(f"{host}\tkept: locked by {lock.holder()}, live (its run may still be changing the host; "
                      "--force breaks it)")
                failed = True
        for host, result in sorted(break_locks(session, breaking, bound).items()):
            if isinstance(result, Outcome):
                print(f"{host}\tFAILED: {result.reason}")
                failed = True
            elif result.state == "broken":
                print(f"{host}\tbroken")
            elif result.record:
                print(f"{host}\tnot broken: the lock changed hands since it was read (now {result.holder()})")
            else:
                print(f"{host}\talready free")
    finally:
        session.disconnect()
    sys.stdout.flush()
    return 1 if failed else 0
