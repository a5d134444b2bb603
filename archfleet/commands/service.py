"""`archfleet service info SERVICE [--limit NAME[,NAME...]] [-f FLEET] [--json]`: how to reach a service on each
host of the fleet, from the fleet file alone (nothing is contacted).

For every host the service is placed on: the address (the inventory's ``ssh_hostname``, else the host's name), the
port (the service's ``vars.port``, else its first published port) and its image. A VMess proxy (a service with a
``vmess_id`` secret: the shipped v2ray) also gets its client: the v2ray client config (a SOCKS5 inbound on
127.0.0.1, the same builder the lab's demo uses, archfleet.lab.v2ray_client) and a ``vmess://`` link for phone and
desktop clients (the v2rayN share format). Both carry the proxy's id: treat the output as a secret.
"""

from __future__ import annotations

import argparse
import base64
import json
from typing import Any

from archfleet.commands.limit import add_limit_argument, limit_text
from archfleet.commands.sync import add_fleet_argument, load_fleet_for_services
from archfleet.errors import InputError
from archfleet.fleet import Fleet, service_reference
from archfleet.fleet.services import ServiceSpec
from archfleet.lab.v2ray_client import client_config
from archfleet.sync.scope import hosts_in_scope

VMESS_SECRET = "vmess_id"
FIRST_SOCKS_PORT = 1080  # the first host's client listens here, the next on 1081... (as the demo's)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("service", help="how to reach a service on each host (v2ray: client config "
                                                   "and vmess:// link)")
    actions = parser.add_subparsers(dest="service_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    info = actions.add_parser("info", help="each host's address and port for SERVICE; for a VMess proxy the v2ray "
                                           "client config and vmess:// link (they hold the proxy's id)")
    info.add_argument("service", metavar="SERVICE", help="a service of the fleet file, e.g. v2ray")
    add_fleet_argument(info)
    add_limit_argument(info)
    info.add_argument("--json", action="store_true", help="one JSON document: every host with its client config")
    info.set_defaults(handler=run_info)


def vmess_link(name: str, address: str, port: int, vmess_id: str) -> str:
    """The v2rayN share link: ``vmess://`` + base64 of its JSON (VMess over plain TCP, alterId 0)."""
    document = {"v": "2", "ps": name, "add": address, "port": str(port), "id": vmess_id, "aid": "0",
                "scy": "auto", "net": "tcp", "type": "none", "host": "", "path": "", "tls": ""}
    return "vmess://" + base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


def service_port(spec: ServiceSpec) -> int | None:
    if "port" in spec.vars:
        return int(spec.vars["port"])
    return spec.ports[0].host_port if spec.ports else None


def host_address(fleet: Fleet, host: str) -> str:
    assert fleet.hosts is not None
    entry = fleet.hosts.get_host(host)
    address = entry.data.get("ssh_hostname") if entry is not None else None
    return str(address or host)


def host_entries(fleet: Fleet, spec: ServiceSpec, hosts: list[str]) -> list[dict[str, Any]]:
    """One entry per host: address, port, image and, for a VMess proxy, its client config and link."""
    port = service_port(spec)
    vmess_id = next((secret.read() for secret in spec.secrets if secret.name == VMESS_SECRET), None)
    entries = []
    for index, host in enumerate(hosts):
        address = host_address(fleet, host)
        entry: dict[str, Any] = {"host": host, "address": address, "port": port,
                                 "image": service_reference(fleet, spec)}
        if vmess_id is not None and port is not None:
            entry["socks_port"] = FIRST_SOCKS_PORT + index
            entry["client_config"] = client_config(address, port, vmess_id, FIRST_SOCKS_PORT + index)
            entry["vmess"] = vmess_link(f"{spec.name}@{host}", address, port, vmess_id)
        entries.append(entry)
    return entries


def run_info(args: argparse.Namespace) -> int:
    fleet = load_fleet_for_services(args, "service info")
    assert fleet.placement is not None
    spec = fleet.services.get(args.service)
    if spec is None:
        raise InputError(f"{fleet.path}: service info: no service named {args.service!r} "
                         f"(services: {', '.join(fleet.services) or 'none'})")
    placed = set(fleet.placement.hosts_of(spec.name))
    hosts = [host for host in hosts_in_scope(fleet, limit_text(args.limit)) if host in placed]
    if not hosts:
        raise InputError(f"service info: {spec.name} runs on no host{' of --limit' if args.limit else ''}")
    entries = host_entries(fleet, spec, hosts)
    if args.json:
        print(json.dumps({"service": spec.name, "hosts": entries}, indent=2))
        return 0
    for entry in entries:
        print(f"# {entry['host']}: {spec.name} at {entry['address']}:{entry['port']} ({entry['image']})")
        if "vmess" in entry:
            print(entry["vmess"])
            print(f"# v2ray client config (save it, then `v2ray -config FILE`: SOCKS5 on "
                  f"127.0.0.1:{entry['socks_port']})")
            print(json.dumps(entry["client_config"], indent=2))
    return 0
