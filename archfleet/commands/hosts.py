"""`archfleet hosts bootstrap | forget`: the host bootstrap (``deploys/host.py``) over the fleet file's hosts, connected
as the fleet's ``ssh:`` says; and forgetting a host's recorded SSH key after it was rebuilt."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pyinfra.api import StringCommand

from archfleet.commands.limit import add_limit_argument, add_parallel_argument, limit_text
from archfleet.commands.lock import add_lock_arguments, run_info
from archfleet.commands.sync import add_fleet_argument
from archfleet.errors import InputError
from archfleet.fleet import Fleet, default_fleet_path, load_fleet
from archfleet.known_hosts import TARGET_DATA, forget, target_of
from archfleet.pyinfra_run import HostResult, print_summary, run_deploy
from archfleet.run import say
from archfleet.shipped import deploy_file, inventory_file
from archfleet.sync.hosts import HostSession
from archfleet.sync.lock import DEPLOY_MESSAGE_ENV, DEPLOY_TOKEN_ENV
from archfleet.sync.outcome import Outcome
from archfleet.sync.scope import hosts_in_scope, parallel_of, timeouts_of


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("hosts", help="bootstrap the fleet's hosts; forget a rebuilt host's SSH key")
    actions = parser.add_subparsers(dest="hosts_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    bootstrap = actions.add_parser("bootstrap", help="deploys/host.py on the fleet's hosts (Docker engine, registry "
                                                     "CA and logins, spot watcher), as the fleet's ssh: says")
    add_fleet_argument(bootstrap)
    add_limit_argument(bootstrap)
    add_parallel_argument(bootstrap)
    bootstrap.add_argument("--dry", action="store_true", help="print what would change and change nothing")
    add_lock_arguments(bootstrap)
    bootstrap.set_defaults(handler=run_bootstrap)
    forget_parser = actions.add_parser("forget", help="remove hosts' keys from archfleet's known_hosts (after a "
                                                      "host was rebuilt with a new key)")
    add_fleet_argument(forget_parser)
    forget_parser.add_argument("hosts", nargs="+", metavar="HOST")
    forget_parser.set_defaults(handler=run_forget)


def fleet_with_hosts(args: argparse.Namespace) -> Fleet:
    fleet = load_fleet(args.fleet or default_fleet_path())
    if fleet.hosts is None:
        raise InputError(f"{fleet.path}: the file has no `inventory:`, so it names no hosts")
    return fleet


def first_contact(fleet: Fleet, names: list[str], parallel: int | None = None) -> dict[str, str]:
    """Reach every host once over OpenSSH, through sudo when it applies: a new host's key is recorded (and its
    fingerprint printed), a changed key or a user without passwordless sudo is found before any deploy runs.
    ``{host: reason}`` for the hosts that failed. A new EC2 instance's key is first proven from its console output
    (archfleet.spot.host_keys); one refused there is not contacted."""
    from archfleet.spot.host_keys import prove_new_host_keys

    refused = prove_new_host_keys(fleet.hosts, names, say)
    timeouts = timeouts_of(fleet)
    session = HostSession(fleet.hosts, int(timeouts.connect), parallel)
    try:
        results = session.each([name for name in names if name not in refused], "connect",
                               timeouts.connect + timeouts.facts,
                               lambda host: session.run(host, StringCommand("true"), "sudo failed (is it "
                                                        "passwordless for this user?)"))
    finally:
        session.disconnect()
    failed = {name: value.reason for name, value in results.items() if isinstance(value, Outcome) and not value.ok}
    return {**refused, **failed}


def run_bootstrap(args: argparse.Namespace) -> int:
    fleet = fleet_with_hosts(args)
    names = hosts_in_scope(fleet, limit_text(args.limit))
    say(f"hosts bootstrap: deploys/host.py on {len(names)} host(s) of {fleet.inventory}"
        f"{' (dry run)' if args.dry else ''}")
    parallel = parallel_of(fleet, getattr(args, "parallel", None))  # spot up --sync's Namespace has none
    failed = first_contact(fleet, names, parallel)
    reachable = [name for name in names if name not in failed]
    run = run_info(args, "hosts bootstrap")
    held, session = None, None
    try:
        if reachable and not args.dry:  # the deploy runs under this run's locks (its own take finds them ours)
            from archfleet.sync.lock import EXPIRY_MARGIN_SECONDS, take_locks

            session = HostSession(fleet.hosts, int(fleet.timeouts.connect), parallel)
            held = take_locks(session, reachable, run, expires_after=fleet.timeouts.run + EXPIRY_MARGIN_SECONDS,
                              say=say)
            failed.update({name: f"fleet lock: {reason}" for name, reason in held.failed.items()})
            reachable = [name for name in reachable if name in held.hosts]
        result = run_deploy(
            inventory_file("fleet.py"), deploy_file("host.py"), dry=args.dry, limit=reachable,
            env={"ARCHFLEET_FLEET": str(fleet.path.resolve()), DEPLOY_TOKEN_ENV: run.id,
                 DEPLOY_MESSAGE_ENV: run.message or ""}, extra_args=["--parallel", str(parallel)],
        ) if reachable else None
    finally:
        if held is not None:
            held.release()
        if session is not None:
            session.disconnect()
    if result is None:
        from archfleet.pyinfra_run import DeployResult

        result = DeployResult(0, {}, [], args.dry)
    for name, reason in failed.items():
        result.hosts[name] = HostResult(failed=[reason])
    for name in reachable:  # a host with nothing to change is still a line of the summary
        result.hosts.setdefault(name, HostResult())
    print_summary(result, "bootstrap")
    sys.stdout.flush()
    any_failed = bool(failed or result.failed_hosts or any(r.failed for r in result.hosts.values()))
    return 1 if any_failed or result.returncode != 0 else 0


def run_forget(args: argparse.Namespace) -> int:
    fleet = fleet_with_hosts(args)
    assert fleet.hosts is not None  # fleet_with_hosts refuses a file without hosts
    known = {host.name: host for host in fleet.hosts}
    missing = [name for name in args.hosts if name not in known]
    if missing:
        raise InputError(f"hosts forget: no host named {', '.join(map(repr, missing))} in {fleet.inventory} "
                         f"(hosts: {', '.join(sorted(known))})")
    for name in args.hosts:
        # the file this host is really checked against: its own (an inventory's ssh_known_hosts_file, kept unless
        # the fleet file names one) or archfleet's, as apply_ssh merged it into the host's data
        data = {key: known[name].data.get(key) for key in TARGET_DATA}
        target = target_of(name, {**data, "ssh_known_hosts_file": data["ssh_known_hosts_file"] or
                                  fleet.ssh.known_hosts})
        assert target is not None
        removed = forget(target)
        if removed:
            print(f"{name}: removed the recorded key of {', '.join(removed)} from {target.file}")
        else:
            print(f"{name}: nothing recorded in {target.file}")
    return 0
