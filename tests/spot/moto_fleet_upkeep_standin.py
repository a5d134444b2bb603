"""moto_server (the real EC2 API over HTTP, a separate process) plus the two EC2 Fleet behaviours moto 5.2.5 lacks.

Run as ``python -m tests.spot.moto_fleet_upkeep_standin -H 127.0.0.1 -p PORT``. Everything else is moto's own.
The additions are a STAND-IN for what AWS does and are limited to:

- ``ModifyFleet`` (moto answers "not implemented"): the fleet's target capacity is recorded;
- the upkeep of a ``maintain`` fleet (AWS replaces interrupted or terminated instances, and terminates the excess
  after a capacity decrease; moto does neither): applied when the fleet is read (DescribeFleets,
  DescribeFleetInstances) or modified, with moto's own ``create_spot_requests`` launching replacements;
- spot pools that run out (moto's capacity is endless): ``ARCHFLEET_STANDIN_POOL_CAPACITY="t3.nano=1"`` lets at
  most that many live instances of a type exist; a fleet asking for more takes the rest from its other instance
  types (in the order of its overrides), and one with no other type stays short, as on AWS when a pool is
  exhausted;
- EC2 calls that fail on request (moto's calls never fail), so that archfleet's handling of a failed call runs:
  ``POST /archfleet-standin/fail?action=DeleteFleets&code=IncorrectState&times=1`` makes the next call(s) of that
  action answer with that error code (HTTP 400, as EC2 does for it, so botocore does not retry it);
  ``DELETE /archfleet-standin/fail`` disarms every one. Deterministic: nothing else decides which call fails.
- an instance's console output (moto's is one fixed kernel log for every instance): ``PUT
  /archfleet-standin/console-output/INSTANCE_ID`` with the text as body makes ``GetConsoleOutput`` answer with
  it for that instance (base64, as EC2 does), as cloud-init's printed host keys appear there on AWS.

archfleet itself only calls the public EC2 API; these additions exist so that its resize and interruption
paths run against an endpoint over HTTP instead of being skipped.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.fleets import Fleet, FleetsBackend
from moto.ec2.responses import EC2Response
from moto.ec2.responses.fleets import Fleets
from moto.ec2.responses.general import General
from moto.ec2.utils import Base64EncodedString
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

from tests.spot.standin_protocol import CONSOLE_PATH, FAILURE_PATH

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


def pool_room(fleet: Fleet, instance_type: str, planned: dict[str, int]) -> int | None:
    """How many more instances of ``instance_type`` its pool takes (None: endless), ``planned`` ones counted."""
    capacity = POOL_CAPACITY.get(instance_type)
    if capacity is None:
        return None
    used = sum(1 for i in fleet.ec2_backend.all_instances() if i.instance_type == instance_type and i.state in ALIVE)
    return max(0, capacity - used - planned.get(instance_type, 0))


def get_launch_spec_counts(self: Fleet, weight_to_add: float) -> tuple[dict[Any, int], float]:
    """moto's choice of how many instances of which spec, capped by the pools' capacity; what an exhausted pool
    cannot take comes from the fleet's other pools, in the order of its overrides, as far as they have room (as
    AWS fills a fleet from its other pools; a fleet of one type stays short)."""
    weight_map, weight = _launch_spec_counts(self, weight_to_add)
    planned: dict[str, int] = {}
    short = 0
    for spec, count in list(weight_map.items()):
        room = pool_room(self, spec.instance_type, planned)
        allowed = count if room is None else min(count, room)
        short += count - allowed
        weight -= (count - allowed) * spec.weighted_capacity
        weight_map[spec] = allowed
        planned[spec.instance_type] = planned.get(spec.instance_type, 0) + allowed
    for spec in self.launch_specs:
        room = pool_room(self, spec.instance_type, planned)
        taken = short if room is None else min(short, room)
        if taken > 0:
            weight_map[spec] = weight_map.get(spec, 0) + taken
            weight += taken * spec.weighted_capacity
            planned[spec.instance_type] = planned.get(spec.instance_type, 0) + taken
            short -= taken
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


# --- calls that fail on request -------------------------------------------------------------------------------

_failures_lock = threading.Lock()
_armed_failures: dict[str, tuple[str, int]] = {}  # EC2 action -> (error code, how many more calls fail)


def take_failure(action: str) -> str | None:
    """The error code the next call of ``action`` fails with, if one is armed (and count it off)."""
    with _failures_lock:
        armed = _armed_failures.get(action)
        if armed is None:
            return None
        code, remaining = armed
        if remaining <= 1:
            del _armed_failures[action]
        else:
            _armed_failures[action] = (code, remaining - 1)
        return code


_call_action = EC2Response.call_action


def call_action(self: EC2Response) -> Any:
    code = take_failure(self._get_action())
    if code is None:
        return _call_action(self)
    error = EC2ClientError(code, f"archfleet stand-in: {self._get_action()} failed on request")
    return self.serialized(ActionResult(error))


# --- console output set by the test ---------------------------------------------------------------------------

_console_outputs: dict[str, str] = {}  # instance id -> console text
_get_console_output = General.get_console_output


def get_console_output(self: General) -> ActionResult:
    text = _console_outputs.get(self._get_param("InstanceId"))
    if text is None:
        return _get_console_output(self)
    answer: dict[str, Any] = dict(_get_console_output(self).result)  # type: ignore[call-overload]
    # moto's checks (the instance exists) and answer, with this text
    return ActionResult({**answer, "Output": Base64EncodedString.from_raw_string(text)})


def set_console_output(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    instance_id = environ["PATH_INFO"][len(CONSOLE_PATH):]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    _console_outputs[instance_id] = environ["wsgi.input"].read(length).decode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
    return [b""]


_dispatch = DomainDispatcherApplication.__call__


def dispatch(self: DomainDispatcherApplication, environ: dict[str, Any],
             start_response: Callable[..., Any]) -> Iterable[bytes]:
    if str(environ.get("PATH_INFO", "")).startswith(CONSOLE_PATH) and environ["REQUEST_METHOD"] == "PUT":
        return set_console_output(environ, start_response)
    if environ.get("PATH_INFO") != FAILURE_PATH:
        return _dispatch(self, environ, start_response)
    with _failures_lock:
        if environ["REQUEST_METHOD"] == "DELETE":
            _armed_failures.clear()
        else:
            query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            _armed_failures[query["action"]] = (query.get("code", "IncorrectState"), int(query.get("times", "1")))
        answer = repr(sorted(_armed_failures.items())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


EC2Response.call_action = call_action  # type: ignore[method-assign, assignment]
General.get_console_output = get_console_output  # type: ignore[method-assign]
DomainDispatcherApplication.__call__ = dispatch  # type: ignore[method-assign]
Fleets.modify_fleet = modify_fleet  # type: ignore[attr-defined]
Fleet.get_launch_spec_counts = get_launch_spec_counts  # type: ignore[method-assign]
FleetsBackend.describe_fleets = describe_fleets  # type: ignore[method-assign]
FleetsBackend.describe_fleet_instances = describe_fleet_instances  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])
