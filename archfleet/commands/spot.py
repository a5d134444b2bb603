"""`archfleet spot up | status | down | prices [-f FLEET] [NAME]`: EC2 spot fleets from the fleet file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from archfleet.errors import InputError, OperationFailed
from archfleet.fleet import load_fleet
from archfleet.fleet.spot import SpotFleetSpec
from archfleet.run import say


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("spot", help="EC2 spot fleets: create, inspect, remove, prices")
    actions = parser.add_subparsers(dest="spot_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    for action, handler, help_text in (
        ("up", run_up, "create or reconcile the fleet, wait until its instances run, print them"),
        ("status", run_status, "the fleet, its instances, and anything left over that belongs to it"),
        ("down", run_down, "delete the fleet, its instances, spot requests and launch templates"),
        ("prices", run_prices, "current spot price per declared type and AZ, and the cheapest"),
    ):
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument("-f", "--fleet", type=Path, help="fleet file (default: $ARCHFLEET_FLEET or fleet.yaml)")
        sub.add_argument("name", nargs="?", metavar="NAME", help="a spot fleet's name (default: every one declared)")
        if action == "status":
            sub.add_argument("--json", action="store_true",
                             help="print one JSON document on stdout (fleets, instances, leftovers)")
        if action in ("up", "down"):
            sub.add_argument("--dry", action="store_true", help="print the plan, change nothing")
            sub.add_argument("--wait", type=float, default=600, metavar="SECONDS",
                             help="how long to wait for instances to run (up) or terminate (down); default 600")
        sub.set_defaults(handler=handler)


def selected(args: argparse.Namespace) -> list[SpotFleetSpec]:
    fleet = load_fleet(args.fleet)
    specs = fleet.spot_fleets
    if args.name:
        if args.name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise InputError(f"{fleet.path}: no spot fleet named {args.name!r} (declared: {known})")
        return [specs[args.name]]
    if not specs:
        raise InputError(f"{fleet.path}: no `spot_fleets:` declared")
    return [specs[name] for name in sorted(specs)]


def run_up(args: argparse.Namespace) -> int:
    from archfleet.spot import fleets
    from archfleet.spot.discovery import format_rows

    for checked in [fleets.check_fleet(spec, for_up=True) for spec in selected(args)]:
        spec = checked.spec
        result = fleets.up(checked, wait_seconds=args.wait, dry=args.dry)
        if args.dry:
            for change in result.changes:
                print(f"{spec.name}: would {change}")
            if not result.changes:
                print(f"{spec.name}: no change")
            continue
        if result.changes:
            for change in result.changes:
                say(f"spot fleet {spec.name}: {change}")
        else:
            say(f"spot fleet {spec.name}: no change (fleet {result.fleet_id} already as declared)")
        say(f"spot fleet {spec.name}: {len(result.instances)} instance(s) running ({result.seconds:.1f}s)")
        print(f"# {spec.name} fleet {result.fleet_id}")
        for line in format_rows(result.instances):
            print(line)
    return 0


def run_status(args: argparse.Namespace) -> int:
    from archfleet.spot import fleets
    from archfleet.spot.discovery import format_rows

    states = [fleets.status(checked) for checked in [fleets.check_fleet(spec) for spec in selected(args)]]
    if args.json:
        print(json.dumps({"spot_fleets": [state.as_json() for state in states]}, indent=2))
        return 0
    for state in states:
        if not state.fleets:
            print(f"# {state.name} ({state.region}): no fleet")
        for fleet in state.fleets:
            capacity = fleet.get("TargetCapacitySpecification", {})
            print(f"# {state.name} ({state.region}): fleet {fleet['FleetId']} {fleet['FleetState']} "
                  f"{fleet.get('Type')}, target {capacity.get('TotalTargetCapacity')}, "
                  f"{len(state.members.get(fleet['FleetId'], ()))} running in it")
        for line in format_rows(state.instances):
            print(line)
        for item in state.leftovers:
            print(f"leftover: {item}")
    return 0


def run_down(args: argparse.Namespace) -> int:
    """Every selected fleet is taken down as far as it goes; one that could not be finished is named at the end
    (exit 1) with what is left, after the others were done."""
    from archfleet.spot import fleets

    unfinished: list[str] = []
    for checked in [fleets.check_fleet(spec) for spec in selected(args)]:
        spec = checked.spec
        if args.dry:
            plan_lines = fleets.down_plan(checked)
            for line in plan_lines:
                print(f"{spec.name}: would {line}")
            if not plan_lines:
                print(f"{spec.name}: nothing to remove")
            continue
        result = fleets.down(checked, wait_seconds=args.wait)
        for line in result.done:
            say(f"spot fleet {spec.name}: {line}")
        if result.complete:
            print(f"{spec.name}: {'removed' if result.done else 'nothing to remove'}")
            continue
        for item in result.left or []:
            print(f"{spec.name}: left: {item}")
        left = ", ".join(map(str, result.left)) if result.left is not None else "unknown (listing it failed)"
        unfinished.append(f"spot fleet {spec.name}: {len(result.failures)} call(s) failed, left: {left} "
                          f"{result.endpoint_note}")
    if unfinished:
        raise OperationFailed(f"down incomplete ({'; '.join(unfinished)}); run `archfleet spot down` again")
    return 0


def run_prices(args: argparse.Namespace) -> int:
    from archfleet.spot.fleets import check_fleet
    from archfleet.spot.prices import format_prices, pool_prices

    for checked in [check_fleet(spec) for spec in selected(args)]:
        spec = checked.spec
        prices, choice = pool_prices(checked.ec2, spec)
        print(f"# {spec.name}")
        for line in format_prices(prices, choice, spec.max_price):
            print(line)
    return 0
