"""`archfleet spot up | status | down | prices [-f FLEET] [NAME]`: EC2 spot fleets from the fleet file."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from archfleet.errors import InputError, OperationFailed
from archfleet.fleet import Fleet, load_fleet
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
        if action == "up":
            sub.add_argument("--sync", action="store_true",
                             help="then wait until the instances answer over SSH and run the host bootstrap and "
                                  "the sync on them (the fleet file's inventory must hold them: inventories/ec2.py)")
        sub.set_defaults(handler=handler)


def selected(args: argparse.Namespace) -> list[SpotFleetSpec]:
    return selected_in(load_fleet(args.fleet), args)


def selected_in(fleet: Fleet, args: argparse.Namespace) -> list[SpotFleetSpec]:
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
    from archfleet.operator import RunInfo
    from archfleet.spot import fleets
    from archfleet.spot.discovery import format_rows
    from archfleet.spot.joining import joining_host
    from archfleet.spot.release import publish

    fleet = load_fleet(args.fleet)
    run = RunInfo("spot up")
    checked_fleets = [fleets.check_fleet(spec, for_up=True) for spec in selected_in(fleet, args)]
    # Every fleet's user-data is rendered (the registry read once per tag) before anything is created.
    joining = {
        checked.spec.name: [joining_host(fleet, checked.spec, arch, checked.ec2) for arch in sorted(checked.images)]
        for checked in checked_fleets if checked.spec.user_data
    }
    instance_ids: list[str] = []
    for checked in checked_fleets:
        spec = checked.spec
        hosts = joining.get(spec.name, [])
        for host in hosts:
            say(f"spot fleet {spec.name}: {host.arch} user-data starts {', '.join(host.services) or 'no services'}")
        # The release first (its secrets, scripts, then the pointer): an instance the fleet launches reads it.
        published = publish(checked.ec2, spec, hosts, run, dry=args.dry) if spec.user_data else []
        result = fleets.up(checked, wait_seconds=args.wait, dry=args.dry,
                           user_data={host.arch: host.user_data for host in hosts})
        result.changes[:0] = published
        instance_ids += [row.instance_id for row in result.instances]
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
    if args.sync and not args.dry:
        return join_by_sync(args, instance_ids)
    return 0


def join_by_sync(args: argparse.Namespace, instance_ids: list[str]) -> int:
    """``spot up --sync``: wait until every instance answers over SSH (a new one boots for a while), then the host
    bootstrap and the sync on those instances, as ``archfleet hosts bootstrap`` and ``archfleet sync`` run them."""
    from archfleet.commands.hosts import first_contact, run_bootstrap
    from archfleet.commands.sync import run_sync

    if not instance_ids:
        say("spot up --sync: no instances to bootstrap")
        return 0
    fleet = load_fleet(args.fleet)  # read again: the inventory now lists the new instances
    missing = [i for i in instance_ids if fleet.hosts is None or fleet.hosts.get_host(i, None) is None]
    if missing:
        raise InputError(f"{fleet.path}: `spot up --sync`: the fleet file's inventory ({fleet.inventory}) does not "
                         f"hold {', '.join(missing)}: use inventories/ec2.py with ARCHFLEET_EC2_FLEET")
    deadline = time.monotonic() + args.wait
    while failed := first_contact(fleet, instance_ids):
        if time.monotonic() >= deadline:
            reasons = "; ".join(f"{host}: {reason}" for host, reason in sorted(failed.items()))
            raise OperationFailed(f"spot up --sync: not reachable over SSH after {args.wait:g}s: {reasons}")
        say(f"spot up --sync: waiting for {len(failed)} instance(s) to answer over SSH")
        time.sleep(5)
    limit = [",".join(sorted(instance_ids))]  # as `--limit` gives it (archfleet.commands.limit)
    code = run_bootstrap(argparse.Namespace(fleet=args.fleet, limit=limit, dry=False))
    if code != 0:
        return code
    return run_sync(argparse.Namespace(fleet=args.fleet, dry=False, prune=False, limit=limit, json=False))


def run_status(args: argparse.Namespace) -> int:
    from archfleet.spot import fleets
    from archfleet.spot.connection import ssm_client
    from archfleet.spot.discovery import format_rows
    from archfleet.spot.release import current_release

    states = []
    specs = selected(args)
    for checked in [fleets.check_fleet(spec) for spec in specs]:
        state = fleets.status(checked)
        if checked.spec.user_data:
            current = current_release(ssm_client(checked.ec2, f"spot fleet {checked.spec.name}: its release"),
                                      checked.spec)
            state.current_release = current.id if current else ""
            state.release_summary = current.summary() if current else "no release published"
        states.append(state)
    from archfleet.tasks.pull_agent_commands import CONVERGE_TAG

    pulling = {spec.name for spec in specs if spec.pulls}
    if args.json:
        documents = [state.as_json() for state in states]
        for document, state in zip(documents, states, strict=True):
            if state.name in pulling:  # the agent's last converge: "ID TIME ok" or "ID TIME failed: REASON"
                document["converge"] = "pull"
                for instance, row in zip(document["instances"], state.instances, strict=True):
                    instance["last_converge"] = row.tags.get(CONVERGE_TAG)
        print(json.dumps({"spot_fleets": documents}, indent=2))
        return 0
    for state in states:
        if not state.fleets:
            print(f"# {state.name} ({state.region}): no fleet")
        for fleet in state.fleets:
            capacity = fleet.get("TargetCapacitySpecification", {})
            print(f"# {state.name} ({state.region}): fleet {fleet['FleetId']} {fleet['FleetState']} "
                  f"{fleet.get('Type')}, target {capacity.get('TotalTargetCapacity')}, "
                  f"{len(state.members.get(fleet['FleetId'], ()))} running in it")
        if state.current_release is not None:
            print(f"# {state.name}: current {state.release_summary}")
        for line in format_rows(state.instances, current_release=state.current_release):
            print(line)
        if state.name in pulling:  # BOOTED RELEASE: the release it runs (booted, or applied by its agent since)
            for row in state.instances:
                print(f"# {row.instance_id}: pull mode, last converge: {row.tags.get(CONVERGE_TAG) or 'none yet'}")
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
