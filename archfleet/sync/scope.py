"""Which hosts a command reaches and within what bounds: the light first step of ``sync``, ``verify`` and
``hosts``, before any host is read. Nothing here imports the registry client or the planner, so the hosts' reads
can start while those are still being imported (archfleet.sync.run)."""

from __future__ import annotations

from archfleet.errors import InputError, OperationFailed
from archfleet.fleet import Fleet
from archfleet.fleet.rollout import TimeoutsSpec
from archfleet.placement import Placement


def placement_of(fleet: Fleet) -> Placement:
    """The fleet's placement (every command that syncs needs an inventory)."""
    if fleet.placement is None:
        raise OperationFailed(f"{fleet.path}: no inventory: nothing to sync")
    return fleet.placement


def timeouts_of(fleet: Fleet) -> TimeoutsSpec:
    return fleet.timeouts


def hosts_in_scope(fleet: Fleet, limit: str | None) -> list[str]:
    """Every inventory host, or those of ``limit`` (host or group names, comma-separated)."""
    inventory = fleet.hosts
    assert inventory is not None  # every caller refuses a fleet file without `inventory:` first
    names = sorted(host.name for host in inventory)
    if not limit:
        return names
    chosen: set[str] = set()
    for word in (w.strip() for w in limit.split(",") if w.strip()):
        group = inventory.get_group(word, None)
        if word in names:
            chosen.add(word)
        elif group is not None:
            chosen.update(host.name for host in group)
        else:
            raise InputError(f"--limit: {word!r} is neither a host nor a group of {fleet.inventory}")
    return sorted(chosen)
