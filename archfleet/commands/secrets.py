"""`archfleet secrets pull NAME [--service S] [--from HOST] [--force] [-f FLEET]`: copy a secret's value from the
hosts that run it into its `file:` here (0600), for a new controller (a new laptop, a CI job) of a fleet whose
secrets were generated elsewhere (docs/secrets.md).

Every host the secret's services are placed on is read at once, one ``ssh`` each with the fleet's ssh settings
(through sudo where the host's data says): the file the service's container mounts at the secret's mount (from
``docker inspect``), else the one version the host holds. The value is never printed: the command says where it
wrote and from which host. Hosts that hold different values are refused, naming them (``--from`` takes one).
"""

from __future__ import annotations

import argparse
from typing import Any

from archfleet.commands.sync import add_fleet_argument, load_fleet_for_services
from archfleet.errors import InputError, OperationFailed
from archfleet.run import say
from archfleet.services.fleet_secrets import agreed_value, parse_pulled, pull_members, pull_targets
from archfleet.sync.outcome import Outcome
from archfleet.sync.read import HostReads, all_readable_over_openssh
from archfleet.sync.scope import parallel_of, timeouts_of
from archfleet.tasks.secret_commands import read_secrets


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("secrets", help="the fleet's secrets: copy a value the hosts run into its file "
                                                   "here (a new controller)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    pull = actions.add_parser("pull", help="copy secret NAME from the hosts that run it into its file here (0600); "
                                           "the value is never printed")
    pull.add_argument("name", metavar="NAME", help="a secret of the fleet file, e.g. vmess_id")
    pull.add_argument("--service", metavar="S", help="the service whose secret NAME it is (when several services "
                                                     "have a secret NAME in different files)")
    pull.add_argument("--from", dest="from_host", metavar="HOST", help="take the value this host holds (when hosts "
                                                                       "disagree)")
    pull.add_argument("--force", action="store_true", help="replace a file here that holds another value")
    add_fleet_argument(pull)
    pull.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    fleet = load_fleet_for_services(args, "secrets pull")
    assert fleet.placement is not None and fleet.hosts is not None
    secret = pull_members(fleet, args.name, args.service)
    hosts = sorted({host for service in secret.services for host in fleet.placement.hosts_of(service)})
    if args.from_host is not None and args.from_host not in hosts:
        raise InputError(f"secrets pull: --from {args.from_host}: not a host of {', '.join(secret.services)} "
                         f"(hosts: {', '.join(hosts) or 'none'})")
    if args.from_host is not None:
        hosts = [args.from_host]
    if not hosts:
        raise InputError(f"secrets pull: {', '.join(secret.services)} runs on no host: no host holds "
                         f"{secret.name}")
    inventory = [fleet.hosts.get_host(host) for host in hosts]
    if not all_readable_over_openssh(inventory):
        raise InputError("secrets pull reads hosts over OpenSSH (`ssh`), and a host of the inventory is reachable "
                         "only through pyinfra (a connector, a password)")
    timeouts = timeouts_of(fleet)
    say(f"secrets pull: reading {secret.label} on {len(hosts)} host(s)")
    reads = HostReads(inventory, read_secrets(pull_targets(fleet, secret)), what="the secret",
                      connect_timeout=int(timeouts.connect), bound=timeouts.connect + timeouts.facts, say=say,
                      parallel=parallel_of(fleet))
    values: dict[str, str] = {}
    paths: dict[str, str] = {}
    for host, answer in sorted(reads.results().items()):
        if isinstance(answer, Outcome):
            say(f"secrets pull: {host}: not read: {answer.reason}")
            continue
        found, missing = parse_pulled(answer)
        if not found:
            say(f"secrets pull: {host}: holds no version of {secret.name} ({'; '.join(missing) or 'no answer'})")
            continue
        service, name = sorted(found)[0]  # a host with several members (one file): each mounts the same value
        path, content = found[(service, name)]
        host_values = {value.decode(errors="replace") for _, value in found.values()}
        if len(host_values) > 1:
            raise InputError(f"secrets pull: {host} holds different values of {secret.name} for "
                             f"{', '.join(sorted(s for s, _ in found))}: take one with --from and --service")
        values[host], paths[host] = content.decode(errors="replace").strip(), path
    if not values:
        raise OperationFailed(f"secrets pull: no host of {', '.join(secret.services)} holds a version of "
                              f"{secret.name} ({', '.join(hosts)} read); nothing was written")
    host, value = agreed_value(values, args.from_host, secret.name)
    if not value:
        raise OperationFailed(f"secrets pull: {host}: {paths[host]} is empty; nothing was written")
    spec = secret.members[0][1]
    agreeing = sorted(h for h, v in values.items() if v == value and h != host)
    also = f" (the same on {', '.join(agreeing)})" if agreeing else ""
    if secret.file.exists() or secret.file.is_symlink():
        try:
            here = secret.file.read_text().strip()
        except OSError as error:
            raise InputError(f"secrets pull: cannot read {secret.file}: {error.strerror}") from None
        if here == value:
            print(f"secrets pull: {secret.file} already holds the value {host} runs{also}; nothing was written")
            return 0
        if not args.force:
            raise InputError(f"secrets pull: {secret.file} holds another value than {host} runs: --force replaces "
                             "it (the next sync would otherwise roll this file's value out); nothing was written")
    spec.write_file(value, replace=args.force)
    print(f"secrets pull: wrote {secret.label} to {secret.file} (0600) from {host}: {paths[host]}{also}")
    return 0
