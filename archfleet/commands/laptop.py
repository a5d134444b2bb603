"""`archfleet laptop [--dry] [--profile FILE] [--limit NAME[,NAME...]] [TARGET]`: converge a laptop or workstation
(deploys/laptop.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from archfleet.commands.limit import add_limit_argument, limit_names
from archfleet.errors import OperationFailed
from archfleet.fleet import default_fleet_path
from archfleet.fleet.laptop import find_profile
from archfleet.pyinfra_run import print_summary, run_deploy
from archfleet.run import say
from archfleet.shipped import deploy_file


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("laptop", help="set up this machine (or TARGET) as a dev machine: macOS or Debian")
    parser.add_argument("--dry", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--profile", metavar="FILE", help="a laptop profile YAML (default: the fleet file's laptop:)")
    add_limit_argument(parser, "hosts of the TARGET inventory")
    parser.add_argument("target", nargs="?", default="@local",
                        help="a pyinfra inventory: @local (default), an inventory file, or @ssh/HOST")
    parser.set_defaults(handler=run_laptop)


def run_laptop(args: argparse.Namespace) -> int:
    find_profile(args.profile)  # bad input: exit 2 here, before any host is touched
    # pyinfra runs in the project's folder: paths given here are resolved against ours first.
    env = {"ARCHFLEET_FLEET": str(default_fleet_path().resolve())}
    if args.profile:
        env["ARCHFLEET_LAPTOP_PROFILE"] = str(Path(args.profile).resolve())
    target = args.target if args.target.startswith("@") else str(Path(args.target).resolve())
    limit = limit_names(args.limit)
    where = ",".join(limit) if limit else args.target
    say(f"laptop: {'planning' if args.dry else 'converging'} {where}")
    result = run_deploy(Path(target), deploy_file("laptop.py"), dry=args.dry, limit=limit, env=env)
    if result.returncode != 0 and not result.hosts:
        raise OperationFailed(f"laptop: pyinfra stopped without results on {where} (the reason is above)")
    print_summary(result, "laptop")
    return 0 if result.returncode == 0 and not result.failed_hosts else 1
