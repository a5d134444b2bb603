"""`archfleet logs SERVICE [-f FLEET] [--limit NAME[,NAME...]] [--since T] [--lines N] [--follow]`: the log of a
service's container (its stdout and stderr) from every host of the limit it runs on, each line prefixed with the
host's name. One plain ``ssh`` per host, all at once (archfleet.sync.remote); without ``--follow`` each host's lines
come as a block, in host order; with it, lines come as they are written, from every host, until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from archfleet.commands.limit import add_limit_argument, add_parallel_argument, limit_text
from archfleet.commands.sync import add_fleet_argument, load_fleet_for_services
from archfleet.errors import InputError
from archfleet.placement import container_name
from archfleet.run import say
from archfleet.sync.remote import PrefixedLines, run_everywhere, service_hosts
from archfleet.sync.scope import parallel_of, timeouts_of
from archfleet.tasks.container_commands import container_logs, since_argument

DEFAULT_LINES = 100  # without --lines and --since: each host's last 100 lines


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("logs", help="a service's log from each of its hosts, each line prefixed with "
                                                "its host")
    add_service_arguments(parser)
    parser.add_argument("--since", metavar="T", help="only lines since T: a duration back from now (10m, 1h30m), "
                                                     "an RFC 3339 date or time (2026-12-08T02:30:00Z) or a Unix "
                                                     "time, as `docker logs --since` takes it")
    parser.add_argument("--lines", type=int, metavar="N",
                        help=f"each host's last N lines (default: {DEFAULT_LINES}, or every line since T)")
    parser.add_argument("--follow", action="store_true", help="go on printing new lines as the containers write "
                                                              "them, from every host, until Ctrl-C")
    parser.set_defaults(handler=run_logs)


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """SERVICE and the hosts it is reached on (``logs`` and ``exec``)."""
    parser.add_argument("service", metavar="SERVICE", help="a service of the fleet file")
    add_fleet_argument(parser)
    add_limit_argument(parser)
    add_parallel_argument(parser)


def run_logs(args: argparse.Namespace) -> int:
    if args.lines is not None and args.lines < 0:
        raise InputError(f"logs: --lines: expected a number of lines (0 or more), got {args.lines}")
    since = since_argument(args.since) if args.since is not None else None
    fleet = load_fleet_for_services(args, "logs")
    hosts = service_hosts(fleet, args.service, limit_text(args.limit), "logs")
    tail = args.lines if args.lines is not None else (None if since else DEFAULT_LINES)
    command = container_logs(container_name(args.service), tail=tail, since=since, follow=args.follow)
    timeouts = timeouts_of(fleet)
    parallel = parallel_of(fleet, args.parallel)
    if args.follow and len(hosts) > parallel:  # a follow never frees its slot: every host at once
        raise InputError(f"logs --follow: follows every host at once, and {args.service} runs on {len(hosts)} "
                         f"host(s) of the limit, more than {parallel} at once (--parallel, the fleet file's "
                         "`parallel:` or the open-file limit): narrow --limit")
    names = [host.name for host in hosts]
    output = PrefixedLines(names, live=args.follow, label="logs")
    ends = run_everywhere(
        hosts, lambda host: command, output, connect_timeout=int(timeouts.connect), parallel=parallel,
        # without --follow, a host that says nothing for this long is stopped (a follow may be quiet for hours)
        idle_bound=None if args.follow else timeouts.connect + timeouts.facts,
        hold_stdin=args.follow, exit_code_is_failure=True, say=say)
    failed = [name for name in names if ends[name].failure]
    if failed:
        print(f"logs: {len(failed)} of {len(names)} host(s) gave no log: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
