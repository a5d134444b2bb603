"""`archfleet verify [-f FLEET] [--limit HOST|GROUP]`: prove every host runs each declared service from the image
built for its own platform (image platform, pinned digest, `uname -m` inside the container). Read-only."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from archfleet.commands.sync import add_fleet_argument, fleet_inventory
from archfleet.fleet import default_fleet_path, load_fleet
from archfleet.fleet.services import check_placement
from archfleet.inventory_file import inventory_groups
from archfleet.pyinfra_run import gather_fact
from archfleet.run import say
from archfleet.services.proof import FAIL, ProofRow, judge, table

PROOF_FACT = "facts.services.ServiceProof"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("verify", help="prove each host runs its services from its own platform's image")
    add_fleet_argument(parser)
    parser.add_argument("--limit", metavar="HOST|GROUP", help="only these hosts (a host or group name)")
    parser.set_defaults(handler=run_verify)


def proof_rows(placement: dict[str, list[str]], facts: dict[str, Any]) -> list[ProofRow]:
    rows: list[ProofRow] = []
    for host in sorted(facts):
        declared = placement.get(host, [])
        proof = facts[host]
        if proof is None:
            rows.append(ProofRow(host, "?", "-", "-", "-", "-", "-", FAIL, "unreachable"))
            continue
        rows.extend(judge(host, declared, proof))
    return rows


def run_verify(args: argparse.Namespace) -> int:
    path = args.fleet or default_fleet_path()
    fleet = load_fleet(path)
    inventory = fleet_inventory(fleet)
    placement = {
        host: [spec.name for spec in specs]
        for host, specs in check_placement(fleet.services, inventory_groups(inventory)).items()
    }
    say(f"verify: gathering proof from the hosts of {inventory}")
    rows = proof_rows(placement, gather_fact(inventory, PROOF_FACT, args.limit))
    print(table(rows))
    failed = [r for r in rows if r.verdict == FAIL]
    if failed:
        print(f"verify: {len(failed)} problem(s) on {len({r.host for r in failed})} host(s)", file=sys.stderr)
        return 1
    print(f"verify: {len(rows)} service instance(s) on {len({r.host for r in rows})} host(s) proven")
    return 0
