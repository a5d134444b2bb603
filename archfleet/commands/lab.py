"""`archfleet lab up | status | down`: the local lab of real amd64 and arm64 hosts."""

from __future__ import annotations

import argparse
from typing import Any

from archfleet.images.plan import INPUT_LABEL
from archfleet.lab import lab


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("lab", help="start, inspect or remove the local lab")
    actions = parser.add_subparsers(dest="lab_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    up = actions.add_parser("up", help="start the lab (idempotent); slow parts are cached")
    for kind, help_text in (
        ("amd64", "amd64 fleet hosts (bare Debian; default: as before, else 1)"),
        ("arm64", "arm64 fleet hosts (arm64 userland and engine under QEMU; default: as before, else 1)"),
        ("workstation", "bare amd64 Debian hosts for the laptop profile (default: as before, else 0)"),
        ("spot", "amd64 hosts playing spot instances (default: as before, else 0)"),
        ("cloud", "amd64 hosts as Debian's cloud images: no root login, `admin` with passwordless sudo "
                  "(default: as before, else 0)"),
    ):
        up.add_argument(f"--{kind}", type=int, metavar="N", help=help_text)
    up.set_defaults(handler=run_up)
    actions.add_parser("status", help="each host, its arch and address, and whether SSH and its engine answer")\
        .set_defaults(handler=run_status)
    reset = actions.add_parser("reset", help="give hosts a fresh first boot (their engine's data is removed)")
    reset.add_argument("hosts", nargs="+", metavar="HOST")
    reset.set_defaults(handler=run_reset)
    actions.add_parser("down", help="remove the lab's containers, volumes, network and registry (built images and "
                                    "packages stay cached)")\
        .set_defaults(handler=run_down)


def run_up(args: argparse.Namespace) -> int:
    state = lab.up(amd64=args.amd64, arm64=args.arm64, workstation=args.workstation, spot=args.spot,
                   cloud=args.cloud)
    for host in state.hosts:
        print(f"{host.name}\t{host.kind}\t{host.arch}\t{host.address}")
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
    lab.down(keep_images_labelled=INPUT_LABEL)  # built images stay in the cache, keyed by their inputs
    return 0
