"""`archfleet sync [--dry] [--limit HOST|GROUP] [-f FLEET]`: every host runs its declared services."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from archfleet.errors import OperationFailed
from archfleet.fleet import Fleet, default_fleet_path, load_fleet
from archfleet.fleet.services import check_placement
from archfleet.inventory_file import inventory_groups
from archfleet.pyinfra_run import print_summary, project_path, run_deploy
from archfleet.run import say

DEFAULT_INVENTORY = "inventories/lab.py"


def add_fleet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--fleet", type=Path, help="the fleet file (default: $ARCHFLEET_FLEET or ./fleet.yaml)")


def fleet_inventory(fleet: Fleet) -> Path:
    """The inventory the fleet file names (relative to the file), else the project's lab inventory."""
    return fleet.base_dir / fleet.inventory if fleet.inventory else project_path(DEFAULT_INVENTORY)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sync", help="run every declared service on its hosts; change only what drifted")
    add_fleet_argument(parser)
    parser.add_argument("--dry", action="store_true", help="print what would be pulled, created or recreated")
    parser.add_argument("--limit", metavar="HOST|GROUP", help="only these hosts (a host or group name)")
    parser.set_defaults(handler=run_sync)


def run_sync(args: argparse.Namespace) -> int:
    path = args.fleet or default_fleet_path()
    fleet = load_fleet(path)
    inventory = fleet_inventory(fleet)
    check_placement(fleet.services, inventory_groups(inventory))
    say(f"sync: {len(fleet.services)} service(s) from {path} on {inventory}{' (dry run)' if args.dry else ''}")
    result = run_deploy(
        inventory, project_path("deploys/services.py"), dry=args.dry, limit=args.limit,
        env={"ARCHFLEET_FLEET": str(Path(path).resolve())},
    )
    if result.returncode != 0 and not result.hosts:
        raise OperationFailed("sync: pyinfra stopped without results (the reason is above)")
    print_summary(result, "sync")
    return 0 if result.returncode == 0 and not result.failed_hosts else 1
