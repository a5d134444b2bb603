"""moto_server (the real EC2 API over HTTP, a separate process) plus the two EC2 Fleet behaviours moto 5.2.5 lacks.

Run as ``python -m tests.spot.moto_fleet_upkeep_standin -H 127.0.0.1 -p PORT``. Everything else is moto's own.
The additions are a STAND-IN for what AWS does and are limited to:

- ``ModifyFleet`` (moto answers "not implemented"): the fleet's target capacity is recorded;
- the upkeep of a ``maintain`` fleet (AWS replaces interrupted or terminated instances, and terminates the excess
  after a capacity decrease; moto does neither): applied when the fleet is read (DescribeFleets,
  DescribeFleetInstances) or modified, with moto's own ``create_spot_requests`` launching replacements;
- spot pools that run out (moto's capacity is endless): ``ARCHFLEET_STANDIN_POOL_CAPACITY="t3.nano=1"`` lets at
  most that many live instances of a type exist; a fleet asking for more stays short, as on AWS when a pool is
  exhausted.

archfleet itself only calls the public EC2 API; these additions exist so that its resize and interruption
paths run against an endpoint over HTTP instead of being skipped.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models.fleets import Fleet, FleetsBackend
from moto.ec2.responses.fleets import Fleets
from moto.server import main

ALIVE = ("pending", "running")
_POOLS = os.environ.get("ARCHFLEET_STANDIN_POOL_CAPACITY", "")
POOL_CAPACITY = {name: int(count) for name, _, count in (item.partition("=") for item in _POOLS.split(",")) if name}


def upkeep(fleet: Fleet) -> None:
    """What AWS does to a maintain fleet: forget requests whose instance is gone, launch or terminate to target."""
    if fleet.fleet_type != "maintain" or fleet.state != "active":
        return
    for request in fleet.ec2_backend.spot_instance_requests.values():
        if request.spot_fleet_id == fleet.id and request.instance.state not in ALIVE:
            request.state = "closed"  # AWS: instance-terminated-*, a one-time request closes
    fleet.spot_requests = [r for r in fleet.spot_requests if r.instance.state in ALIVE]
    running = len(fleet.spot_requests)
    if running < fleet.target_capacity:
        fleet.create_spot_requests(fleet.target_capacity - running)
    elif running > fleet.target_capacity:
        excess = fleet.spot_requests[fleet.target_capacity:]
        fleet.spot_requests = fleet.spot_requests[: fleet.target_capacity]
        for request in excess:
            request.state = "closed"
        fleet.ec2_backend.terminate_instances([r.instance.id for r in excess])
    fleet.fulfilled_capacity = float(len(fleet.spot_requests))


def modify_fleet(self: Any) -> ActionResult:
    fleet = self.ec2_backend.get_fleet(self._get_param("FleetId"))
    capacity = self._get_param("TargetCapacitySpecification", {}).get("TotalTargetCapacity")
    if capacity is not None:
        fleet.target_capacity = int(capacity)
        fleet.target_capacity_specification = {
            **fleet.target_capacity_specification, "TotalTargetCapacity": int(capacity),
            "SpotTargetCapacity": int(capacity),
        }
    configs = self._get_param("LaunchTemplateConfigs")
    if configs:
        fleet.launch_template_configs = configs
    upkeep(fleet)
    return ActionResult({"Return": True})


_launch_spec_counts = Fleet.get_launch_spec_counts


def get_launch_spec_counts(self: Fleet, weight_to_add: float) -> tuple[dict[Any, int], float]:
    """moto's choice of how many instances of which spec, capped by the pools' capacity."""
    weight_map, weight = _launch_spec_counts(self, weight_to_add)
    for spec, count in list(weight_map.items()):
        capacity = POOL_CAPACITY.get(spec.instance_type)
        if capacity is None:
            continue
        used = sum(1 for i in self.ec2_backend.all_instances()
                   if i.instance_type == spec.instance_type and i.state in ALIVE)
        allowed = max(0, min(count, capacity - used))
        weight -= (count - allowed) * spec.weighted_capacity
        weight_map[spec] = allowed
    return weight_map, weight


_describe_fleets = FleetsBackend.describe_fleets
_describe_fleet_instances = FleetsBackend.describe_fleet_instances


def describe_fleets(self: FleetsBackend, fleet_ids: list[str] | None) -> list[Fleet]:
    fleets = _describe_fleets(self, fleet_ids)
    for fleet in fleets:
        upkeep(fleet)
    return fleets


def describe_fleet_instances(self: FleetsBackend, fleet_id: str) -> list[Any]:
    fleet = self.get_fleet(fleet_id)
    if fleet is not None:
        upkeep(fleet)
    return _describe_fleet_instances(self, fleet_id)


Fleets.modify_fleet = modify_fleet  # type: ignore[attr-defined]
Fleet.get_launch_spec_counts = get_launch_spec_counts  # type: ignore[method-assign]
FleetsBackend.describe_fleets = describe_fleets  # type: ignore[method-assign]
FleetsBackend.describe_fleet_instances = describe_fleet_instances  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])
