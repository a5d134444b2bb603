"""`archfleet laptop [--dry] [--profile FILE] [TARGET]`: converge a laptop or workstation (deploys/laptop.py)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from archfleet.errors import OperationFailed
from archfleet.fleet.laptop import find_profile
from archfleet.run import say

DEPLOY = Path(__file__).resolve().parents[2] / "deploys" / "laptop.py"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("laptop", help="set up this machine (or TARGET) as a dev machine: macOS or Debian")
    parser.add_argument("--dry", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--profile", metavar="FILE", help="a laptop profile YAML (default: the fleet file's laptop:)")
    parser.add_argument("--limit", metavar="HOST", help="only this host of the TARGET inventory")
    parser.add_argument("target", nargs="?", default="@local",
                        help="a pyinfra inventory: @local (default), an inventory file, or @ssh/HOST")
    parser.set_defaults(handler=run_laptop)


def pyinfra_argv(args: argparse.Namespace) -> list[str]:
    """pyinfra's own flags: ``--dry`` without ``-y`` prints the detected changes (the plan) and stops."""
    argv = [str(Path(sys.executable).parent / "pyinfra"), args.target, str(DEPLOY)]
    if args.limit:
        argv += ["--limit", args.limit]
    argv.append("--dry" if args.dry else "-y")
    return argv


def run_laptop(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    find_profile(args.profile)  # bad input: exit 2 here, before any host is touched
    if args.profile:
        env["ARCHFLEET_LAPTOP_PROFILE"] = str(Path(args.profile).resolve())
    say(f"laptop: {'planning' if args.dry else 'converging'} {args.limit or args.target}")
    result = subprocess.run(pyinfra_argv(args), env=env, check=False)
    if result.returncode != 0:
        raise OperationFailed(f"laptop deploy on {args.limit or args.target} failed (pyinfra exit {result.returncode})")
    return 0
