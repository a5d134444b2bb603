"""`archfleet lab up | status | down`: the local lab of real amd64 and arm64 hosts."""

from __future__ import annotations

import argparse
from typing import Any

from archfleet.lab import lab


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("lab", help="start, inspect or remove the local lab")
    actions = parser.add_subparsers(dest="lab_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    up = actions.add_parser("up", help="start the lab (idempotent); slow parts are cached")
    up.add_argument("--amd64", type=int, metavar="N", help="number of amd64 hosts (default: as before, else 1)")
    up.add_argument("--arm64", type=int, metavar="N", help="number of arm64 hosts (default: as before, else 1)")
    up.set_defaults(handler=run_up)
    actions.add_parser("status", help="each host, its arch and address, and whether SSH and its engine answer")\
        .set_defaults(handler=run_status)
    reset = actions.add_parser("reset", help="give hosts a fresh first boot (their engine's data is removed)")
    reset.add_argument("hosts", nargs="+", metavar="HOST")
    reset.set_defaults(handler=run_reset)
    actions.add_parser("down", help="remove the lab's containers, volumes, network and registry")\
        .set_defaults(handler=run_down)


def run_up(args: argparse.Namespace) -> int:
    state = lab.up(amd64=args.amd64, arm64=args.arm64)
    for host in state.hosts:
        print(f"{host.name}\t{host.arch}\t{host.address}")
    print(f"registry\t{state.registry.address}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    _, rows = lab.status()
    lab.print_status_table(rows)
    hosts_down = [r for r in rows if r["ssh"] == "down"]
    registry_down = [r for r in rows if r["host"] == "registry" and r["engine"] == "down"]
    return 1 if hosts_down or registry_down else 0


def run_reset(args: argparse.Namespace) -> int:
    lab.reset(args.hosts)
    return 0


def run_down(args: argparse.Namespace) -> int:
    lab.down()
    return 0
