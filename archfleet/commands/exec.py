"""`archfleet exec SERVICE [-f FLEET] [--limit NAME[,NAME...]] [-i] [-t] -- CMD...`: a command inside a service's
running container. Without ``-i``/``-t``, on every host of the limit the service runs on, all at once (one plain
``ssh`` each, archfleet.sync.remote), each host's output as a block prefixed with its name, then the exit code of
each; exit 0 only when it exited 0 everywhere. With ``-i``/``-t`` (``-it``), on exactly one host: ``ssh -t`` and
``docker exec -it``, with this terminal handed over. The command's words reach the container as they were given."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from typing import Any

from archfleet.commands.limit import limit_text
from archfleet.commands.logs import add_service_arguments
from archfleet.commands.sync import load_fleet_for_services
from archfleet.errors import InputError
from archfleet.placement import container_name
from archfleet.run import say
from archfleet.ssh import SSH_FAILED
from archfleet.sync.read import ssh_command
from archfleet.sync.remote import HostEnd, PrefixedLines, run_everywhere, service_hosts
from archfleet.sync.scope import parallel_of, timeouts_of
from archfleet.tasks.container_commands import container_exec


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("exec", help="run a command inside a service's container, on each of its hosts "
                                                "or, interactively, on one")
    add_service_arguments(parser)
    parser.add_argument("-i", "--interactive", action="store_true",
                        help="keep stdin attached (one host only; with -t: an interactive session)")
    parser.add_argument("-t", "--tty", action="store_true", help="a terminal for the command (one host only)")
    # "+", not "*": a "*" would be matched, empty, together with SERVICE, before the options and the words after --
    parser.add_argument("command", nargs="+", metavar="CMD", help="the command and its arguments, after --")
    parser.set_defaults(handler=run_exec)


def run_exec(args: argparse.Namespace) -> int:
    fleet = load_fleet_for_services(args, "exec")
    hosts = service_hosts(fleet, args.service, limit_text(args.limit), "exec")
    timeouts = timeouts_of(fleet)
    if args.interactive or args.tty:
        return exec_on_one(args, hosts, int(timeouts.connect))
    command = container_exec(container_name(args.service), args.command)
    names = [host.name for host in hosts]
    ends = run_everywhere(hosts, lambda host: command, PrefixedLines(names, live=False, label="exec"),
                          connect_timeout=int(timeouts.connect), parallel=parallel_of(fleet, args.parallel), say=say)
    print(f"exec: {summary([ends[name] for name in names])}", file=sys.stderr)
    return 0 if all(ends[name].exit_code == 0 for name in names) else 1


def summary(ends: list[HostEnd]) -> str:
    """``exit 0 on amd64-1, amd64-2; exit 3 on arm64-1; not run on arm64-2``, in the hosts' order."""
    groups: dict[str, list[str]] = {}
    for end in ends:
        groups.setdefault("not run" if end.exit_code is None else f"exit {end.exit_code}", []).append(end.host)
    return "; ".join(f"{result} on {', '.join(hosts)}" for result, hosts in groups.items())


def exec_on_one(args: argparse.Namespace, hosts: list[Any], connect_timeout: int) -> int:
    """``-i``/``-t``: one host, this terminal handed to ``ssh [-t] HOST -- docker exec -i -t``."""
    flags = "-" + "i" * args.interactive + "t" * args.tty
    if len(hosts) != 1:
        raise InputError(f"exec {flags}: runs on one host, and {args.service} runs on {len(hosts)} host(s) of the "
                         f"limit: {', '.join(h.name for h in hosts)} (name one with --limit HOST)")
    if args.tty and not sys.stdin.isatty():
        raise InputError(f"exec {flags}: -t needs a terminal on stdin (leave -t out to pipe into the command)")
    host = hosts[0]
    command = container_exec(container_name(args.service), args.command, interactive=args.interactive,
                             tty=args.tty)
    argv = ssh_command(host, command, connect_timeout)
    if args.tty:
        argv = [argv[0], "-t", "-o", "LogLevel=ERROR", *argv[1:]]  # no "Connection to ... closed." at the end
    # Ctrl-C belongs to the session: ssh (which gets it too, or passes it on as a byte in raw mode) ends it, and
    # this process waits for ssh. A handler, unlike SIG_IGN, is not inherited by ssh.
    previous = signal.signal(signal.SIGINT, lambda number, frame: None)
    try:
        returncode = subprocess.call(argv)
    finally:
        signal.signal(signal.SIGINT, previous)
    if returncode == 0:
        return 0
    if returncode == SSH_FAILED:
        print(f"exec: {host.name}: ssh exited {SSH_FAILED} (it could not connect, the connection was lost, or the "
              "command exited 255)", file=sys.stderr)
    else:
        print(f"exec: {host.name}: exit {returncode}", file=sys.stderr)
    return 1
