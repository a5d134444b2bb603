"""`archfleet verify [-f FLEET] [--limit NAME[,NAME...]] [--json]`: prove every host runs each declared service from the
image built for its own platform (image platform, pinned digest, `uname -m` inside the container). Read-only: one
command per host, over plain OpenSSH where it can (archfleet.sync.read), so it imports no pyinfra either. Instances of
`converge: pull` spot fleets are not reached: each is judged from its tags (archfleet.spot.pull_mode.pull_rows)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping
from typing import Any

from archfleet.commands.limit import add_limit_argument, add_parallel_argument, limit_text
from archfleet.commands.sync import add_fleet_argument, load_fleet_for_services
from archfleet.facts.service_reads import SERVICE_PROOF_COMMAND, parse_service_proof
from archfleet.fleet.disk import DiskSpec, free_percent
from archfleet.run import say
from archfleet.services.proof import FAIL, ProofRow, judge, table
from archfleet.spot.host_keys import prove_new_host_keys
from archfleet.spot.pull_mode import pull_rows, split_pull_hosts
from archfleet.sync.outcome import Outcome
from archfleet.sync.read import read_everywhere
from archfleet.sync.scope import hosts_in_scope, parallel_of, timeouts_of
from archfleet.table import format_table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("verify", help="prove each host runs its services from its own platform's image")
    add_fleet_argument(parser)
    add_limit_argument(parser)
    add_parallel_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the proof as one JSON document")
    parser.set_defaults(handler=run_verify)


def service_proof_fact() -> type:
    from archfleet.facts.services import ServiceProof

    return ServiceProof


def run_verify(args: argparse.Namespace) -> int:
    fleet = load_fleet_for_services(args, "verify")
    assert fleet.placement is not None and fleet.hosts is not None
    names, pulling = split_pull_hosts(fleet, hosts_in_scope(fleet, limit_text(args.limit)))
    for name, hosts in sorted(pulling.items()):  # they converge themselves: their tags say how it went
        say(f"verify: spot fleet {name}: {len(hosts)} pull-mode host(s) judged from their tags (not reached from "
            "here)")
    timeouts = timeouts_of(fleet)
    say(f"verify: gathering proof from {len(names)} host(s) of {fleet.inventory}")
    prove_new_host_keys(fleet.hosts, names, say)  # a new EC2 instance's key, from its console output
    proofs = read_everywhere(fleet.hosts, names, what="ServiceProof", command=SERVICE_PROOF_COMMAND,
                             parse=parse_service_proof, fact=service_proof_fact, connect_timeout=int(timeouts.connect),
                             bound=timeouts.connect + timeouts.facts, say=say,
                             parallel=parallel_of(fleet, args.parallel))
    rows: list[ProofRow] = []
    for host in sorted(proofs):
        proof = proofs[host]
        declared = [spec.name for spec in fleet.placement.services_on(host)]
        if isinstance(proof, Outcome):
            rows.append(ProofRow(host, "?", "-", "-", "-", "-", "-", FAIL, f"unreachable: {proof.reason}"))
            continue
        rows.extend(judge(host, declared, proof))
    if any(spec.user_data for spec in fleet.spot_fleets.values()):  # instances run their fleet's current release
        from archfleet.spot.release import release_rows

        rows.extend(release_rows(fleet, proofs))
    rows.extend(pull_rows(fleet, pulling))
    failed = [r for r in rows if r.verdict == FAIL]
    disks = disk_rows(fleet.disk, proofs)
    if args.json:
        print(json.dumps({"ok": not failed, "rows": [dataclasses.asdict(r) for r in rows], "disks": disks},
                         indent=2))
    else:
        print(table(rows))
        print(disk_table(disks))
    for host, disk in disks.items():  # a warning, not a failure: what runs is proven all the same
        if disk["warning"]:
            print(f"verify: warning: {host}: the disk of {disk['path']} is filling: {disk['warning']}",
                  file=sys.stderr)
    if failed:
        print(f"verify: {len(failed)} problem(s) on {len({r.host for r in failed})} host(s)", file=sys.stderr)
        return 1
    if not args.json:
        print(f"verify: {len(rows)} service instance(s) on {len({r.host for r in rows})} host(s) proven")
    return 0


def disk_rows(spec: DiskSpec, proofs: Mapping[str, object]) -> dict[str, dict[str, Any]]:
    """Each host's free disk (the filesystem of Docker's data root) and its warning ("" when there is room;
    the fleet file's ``disk:``), for every host that answered."""
    rows: dict[str, dict[str, Any]] = {}
    for host, proof in sorted(proofs.items()):
        disk = proof.get("disk") if isinstance(proof, dict) else None
        if disk is None:
            continue
        rows[host] = {"path": disk["path"], "mount": disk["mount"], "size_bytes": disk["size_kib"] * 1024,
                      "available_bytes": disk["available_kib"] * 1024,
                      "free_percent": round(free_percent(disk), 1), "warning": spec.warning(disk)}
    return rows


def disk_table(disks: dict[str, dict[str, Any]]) -> str:
    def gib(size: int) -> str:
        return f"{size / 1024 ** 3:.1f} GiB"

    return format_table(("HOST", "DOCKER ROOT", "SIZE", "FREE", "FREE %", "DISK"), [
        (host, d["path"], gib(d["size_bytes"]), gib(d["available_bytes"]), f"{d['free_percent']:.1f}%",
         f"WARNING: {d['warning']}" if d["warning"] else "ok") for host, d in disks.items()])
