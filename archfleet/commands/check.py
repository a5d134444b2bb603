"""`archfleet check [-f FLEET]`: validate the fleet file, the inventory it names and every template, offline.

The check is the load every command runs first (archfleet.fleet.load_fleet: every section, the inventory, where
each service runs, every template rendered for each of its hosts), run under a guard that refuses any network
connection, name lookup or child process: nothing is contacted, so it runs anywhere (a laptop on a train, CI
without the lab). An error is one line ``FILE:LINE: key: reason`` and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from archfleet.commands.sync import add_fleet_argument
from archfleet.errors import InputError
from archfleet.fleet import Fleet, default_fleet_path, load_fleet

# Audit events (PEP 578) that reach beyond this process: a connection, a name lookup, a child process.
REACHING_EVENTS = frozenset({
    "socket.connect", "socket.sendto", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
})

_guard = {"installed": False, "active": False}


class ReachedOut(InputError):
    """Something the fleet file loads (an inventory is Python) tried to contact a host or start a process."""


def _refuse(event: str, args: tuple[Any, ...]) -> None:
    if _guard["active"] and event in REACHING_EVENTS:
        _guard["active"] = False  # one refusal: the error's own reporting must not trip it again
        what = args[1] if event == "socket.connect" and len(args) > 1 else args[0] if args else ""
        raise ReachedOut(f"check is offline, but this tried {event} ({what!r}): an inventory that asks an API "
                         "(EC2) or a host cannot be checked offline")


@contextmanager
def offline() -> Iterator[None]:
    """Refuse every network connection, name lookup and child process while the body runs (this process only)."""
    if not _guard["installed"]:
        sys.addaudithook(_refuse)  # audit hooks cannot be removed; it does nothing outside `offline()`
        _guard["installed"] = True
    _guard["active"] = True
    try:
        yield
    finally:
        _guard["active"] = False


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("check", help="validate the fleet file, its inventory and templates (offline)")
    add_fleet_argument(parser)
    parser.set_defaults(handler=run_check)


def summary(fleet: Fleet) -> list[str]:
    hosts = sorted(host.name for host in fleet.hosts) if fleet.hosts is not None else []
    lines = [f"check: {fleet.path}: ok (nothing was contacted)"]
    lines.append(f"  registry   {fleet.registry.address or ('the lab' if fleet.registry.lab else '-')}")
    if fleet.inventory:
        lines.append(f"  inventory  {fleet.inventory}: {len(hosts)} host(s)")
    for name, image in fleet.images.items():
        built = f"context {image.context}" if image.context else f"local image {image.local_image}"
        lines.append(f"  image      {name}: {image.repository}:{image.tag} for "
                     f"{', '.join(str(p) for p in image.platforms)} ({built})")
    for name in fleet.services:
        placed = fleet.placement.hosts_of(name) if fleet.placement is not None else []
        lines.append(f"  service    {name}: {len(placed)} host(s), templates rendered for each")
        for secret in fleet.services[name].secrets:  # read at sync, never here (docs/secrets.md)
            if secret.to_be_generated or not secret.read_at_load:
                lines.append(f"  secret     {name}.{secret.name}: " + (
                    f"to be generated ({secret.file} is not here: a sync generates it when no host holds it, "
                    f"else `archfleet secrets pull {secret.name}`)" if secret.to_be_generated
                    else f"read from {secret.source} when a command needs it"))
    return lines


def run_check(args: argparse.Namespace) -> int:
    path = args.fleet or default_fleet_path()
    with offline():
        fleet = load_fleet(path)
    print("\n".join(summary(fleet)))
    return 0
