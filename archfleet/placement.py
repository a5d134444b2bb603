"""Placement: which service runs on which host, under which container name, in which order. The one home of
that concept: every command and deploy asks this module, none works it out again.

    placement = place(fleet.services, {"amd64": ["amd64-1"], "arm64": ["arm64-1"], "all": [...]})
    placement.services_on("arm64-1")     # [ServiceSpec, ...] in start order
    placement.hosts_of("v2ray")          # ["amd64-1", "arm64-1"]
    container_name("v2ray")              # "archfleet-v2ray"

Errors name the fleet file's line and key: a group or host the inventory does not have, a port two services use
on one host.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from archfleet.schema import Mapping

if TYPE_CHECKING:
    from archfleet.fleet.services import ServiceSpec

CONTAINER_PREFIX = "archfleet-"
PREVIOUS_SUFFIX = "-previous"


def container_name(service: str) -> str:
    """The container a service runs as on every host."""
    return f"{CONTAINER_PREFIX}{service}"


def previous_container_name(service: str) -> str:
    """The container a rollout keeps stopped until the new one is proven (and puts back when it is not)."""
    return f"{container_name(service)}{PREVIOUS_SUFFIX}"


def start_order(specs: Iterable[ServiceSpec]) -> list[ServiceSpec]:
    """Highest ``stop_order`` starts first, so that what stops first (a CI runner) starts last."""
    return sorted(specs, key=lambda s: (-s.stop_order, s.name))


def stop_order(specs: Iterable[ServiceSpec]) -> list[ServiceSpec]:
    return sorted(specs, key=lambda s: (s.stop_order, s.name))


@dataclass(frozen=True)
class Placement:
    services: dict[str, ServiceSpec]  # every declared service, by name
    by_host: dict[str, tuple[str, ...]]  # every inventory host -> its services' names, in start order

    @property
    def hosts(self) -> list[str]:
        return sorted(self.by_host)

    def services_on(self, host: str) -> list[ServiceSpec]:
        return [self.services[name] for name in self.by_host.get(host, ())]

    def hosts_of(self, service: str) -> list[str]:
        return sorted(h for h, names in self.by_host.items() if service in names)

    def stop_order_on(self, host: str) -> list[str]:
        """Container names on ``host`` in the order a spot interruption stops them."""
        return [container_name(spec.name) for spec in stop_order(self.services_on(host))]

    def service_hosts(self) -> dict[str, list[str]]:
        """``{service: [hosts]}`` for every declared service (templates see it as ``service_hosts``)."""
        hosts: dict[str, list[str]] = {name: [] for name in self.services}
        for host in self.hosts:  # one pass (hosts_of per service would read every host's services again)
            for name in self.by_host[host]:
                hosts[name].append(host)
        return hosts


def services_in_groups(services: dict[str, ServiceSpec], groups: Iterable[str]) -> list[ServiceSpec]:
    """The services a host that is not in the inventory yet runs once it is, knowing only its groups (a spot
    instance before it boots: its architecture, ``spot``, its role), in start order. Services placed by host
    name never count: such a host has no name yet."""
    member_of = set(groups) | {"all"}
    return start_order(s for s in services.values() if member_of & set(s.groups))


def place(services: dict[str, ServiceSpec], groups: dict[str, list[str]]) -> Placement:
    """Place ``services`` on the inventory's ``groups`` (group -> host names; ``all`` lists every host)."""
    inventory_hosts = {h for members in groups.values() for h in members}
    all_hosts = sorted(inventory_hosts)
    targets_of: dict[str, set[str]] = {}
    for spec in services.values():
        targets: set[str] = set()
        for group in spec.groups:
            if group not in groups:
                Mapping(spec.node).fail("groups", f"no inventory group {group!r} (groups: {', '.join(sorted(groups))})")
            targets.update(groups[group])
        for name in spec.hosts:
            if name not in inventory_hosts:
                Mapping(spec.node).fail("hosts", f"no inventory host {name!r}")
            targets.add(name)
        targets_of[spec.name] = targets
    placed_on: dict[str, list[ServiceSpec]] = {host: [] for host in all_hosts}
    for spec in services.values():
        for host in targets_of[spec.name]:
            placed_on[host].append(spec)
    by_host = {host: tuple(spec.name for spec in start_order(specs)) for host, specs in placed_on.items()}
    placement = Placement(dict(services), by_host)
    for host in all_hosts:
        used: dict[tuple[int, str], str] = {}
        for spec in placement.services_on(host):
            for port in spec.ports:
                key = (port.host_port, port.protocol)
                if key in used:
                    port.node.fail(
                        f"port {port.host_port}/{port.protocol} on {host} is used by services "
                        f"{used[key]!r} and {spec.name!r}"
                    )
                used[key] = spec.name
    return placement
