"""``up`` (create or reconcile), ``status`` and ``down`` of one spot fleet against an EC2 endpoint."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.exceptions

from archfleet.errors import InputError, OperationFailed
from archfleet.fleet.spot import AmiSource, SpotFleetSpec
from archfleet.run import say
from archfleet.spot import plan
from archfleet.spot.connection import Ec2, connect, ec2_errors, error_code, tag_filter
from archfleet.spot.discovery import InstanceRow, tagged_instances

POLL_SECONDS = 2.0


# --- what EC2 knows about the spec's inputs ------------------------------------------------------------------


def instance_type_architectures(ec2: Ec2, spec: SpotFleetSpec) -> dict[str, str]:
    """Each declared type's architecture (arm64/amd64); a type EC2 does not know is an InputError."""
    try:
        answer = ec2.client.describe_instance_types(InstanceTypes=list(spec.instance_types))
    except botocore.exceptions.ClientError as error:
        if error_code(error).startswith("InvalidInstanceType"):
            message = " ".join(str(error.response["Error"].get("Message", "")).split())
            raise InputError(f"{spec.types_where}: spot_fleets.{spec.name}.instance_types: {message}") from None
        with ec2_errors(f"spot fleet {spec.name}: describing instance types"):
            raise
    result = {}
    for info in answer["InstanceTypes"]:
        arch = plan.arch_of(list(info.get("ProcessorInfo", {}).get("SupportedArchitectures", [])))
        if arch is None:
            raise InputError(f"{spec.types_where}: {info['InstanceType']}: neither arm64 nor x86_64")
        result[info["InstanceType"]] = arch
    missing = [t for t in spec.instance_types if t not in result]
    if missing:
        raise InputError(f"{spec.types_where}: spot_fleets.{spec.name}.instance_types: unknown {', '.join(missing)}")
    with ec2_errors(f"spot fleet {spec.name}: describing instance type offerings"):
        offered = ec2.client.describe_instance_type_offerings(
            LocationType="region", Filters=[{"Name": "instance-type", "Values": list(spec.instance_types)}],
        )["InstanceTypeOfferings"]
    not_offered = sorted(set(spec.instance_types) - {o["InstanceType"] for o in offered})
    if not_offered:
        raise InputError(f"{spec.types_where}: not offered in {ec2.region}: {', '.join(not_offered)}")
    for arch in sorted(set(result.values())):
        if arch not in spec.amis:
            types = ", ".join(t for t in spec.instance_types if result[t] == arch)
            raise InputError(f"{spec.where}: spot_fleets.{spec.name}.ami: no {arch} AMI for {types}")
    return result


def resolve_ami(ec2: Ec2, fleet: str, arch: str, source: AmiSource) -> str:
    """The AMI id for an architecture (from an id, an SSM parameter or a filter), checked to exist and match."""
    action = f"{source.where}: spot_fleets.{fleet}.ami.{arch} ({source.describe()})"
    image_id = source.image_id
    if source.ssm_parameter:
        ssm = boto3.session.Session().client("ssm", region_name=ec2.region)
        with ec2_errors(action):
            image_id = ssm.get_parameter(Name=source.ssm_parameter)["Parameter"]["Value"]
    if image_id:
        with ec2_errors(action):
            images = ec2.client.describe_images(ImageIds=[image_id])["Images"]
    else:
        filters: Any = [{"Name": "name", "Values": [source.name_filter]}, {"Name": "state", "Values": ["available"]}]
        with ec2_errors(action):
            images = ec2.client.describe_images(Filters=filters, Owners=[source.owner] if source.owner else [])[
                "Images"]
        images = [i for i in images if plan.arch_of([i.get("Architecture", "")]) == arch]
        images.sort(key=lambda i: (i.get("CreationDate", ""), i["ImageId"]), reverse=True)
    if not images:
        raise InputError(f"{action}: no such image")
    image = images[0]
    if plan.arch_of([image.get("Architecture", "")]) != arch:
        raise InputError(f"{action}: image {image['ImageId']} is {image.get('Architecture')}, not {arch}")
    return str(image["ImageId"])


def check_max_price(ec2: Ec2, spec: SpotFleetSpec) -> None:
    """With a max price under every pool's current price EC2 would launch nothing: say so before creating anything."""
    from archfleet.spot.prices import pool_prices

    prices, choice = pool_prices(ec2, spec)
    if prices and choice is None:
        low = prices[0]
        raise OperationFailed(
            f"{spec.where}: spot fleet {spec.name}: insufficient spot capacity at max_price {spec.max_price:g}: "
            f"the cheapest pool is {low.instance_type} in {low.availability_zone} at {low.price:g} USD/hour"
        )


# --- finding what belongs to a fleet ---------------------------------------------------------------------------


def find_fleets(ec2: Ec2, name: str, include_gone: bool = False) -> list[dict[str, Any]]:
    fleets: list[dict[str, Any]] = []
    with ec2_errors(f"spot fleet {name}: listing fleets"):
        for page in ec2.client.get_paginator("describe_fleets").paginate():
            for fleet in page["Fleets"]:
                if plan.tag_dict(fleet.get("Tags")).get(plan.FLEET_TAG) != name:
                    continue
                if include_gone or fleet["FleetState"] not in plan.GONE_FLEET_STATES:
                    fleets.append(dict(fleet))
    return fleets


def find_templates(ec2: Ec2, name: str) -> list[dict[str, Any]]:
    with ec2_errors(f"spot fleet {name}: listing launch templates"):
        answer = ec2.client.describe_launch_templates(Filters=tag_filter(plan.FLEET_TAG, name))
    return [dict(t) for t in answer["LaunchTemplates"]]


def find_requests(ec2: Ec2, name: str, instance_ids: list[str]) -> list[dict[str, Any]]:
    """Open or active spot requests of the fleet: tagged with it, or holding one of its instances."""
    requests: list[Any] = []
    with ec2_errors(f"spot fleet {name}: listing spot requests"):
        for page in ec2.client.get_paginator("describe_spot_instance_requests").paginate():
            requests.extend(page["SpotInstanceRequests"])
    return [
        dict(r) for r in requests
        if r.get("State") in plan.OPEN_REQUEST_STATES
        and (plan.tag_dict(r.get("Tags")).get(plan.FLEET_TAG) == name or r.get("InstanceId") in instance_ids)
    ]


def fleet_instance_ids(ec2: Ec2, fleet_id: str) -> list[str]:
    with ec2_errors(f"fleet {fleet_id}: listing its instances"):
        answer = ec2.client.describe_fleet_instances(FleetId=fleet_id)
    return [i["InstanceId"] for i in answer["ActiveInstances"]]


# --- up --------------------------------------------------------------------------------------------------------


@dataclass
class UpResult:
    fleet_id: str
    changes: list[str] = field(default_factory=list)
    instances: list[InstanceRow] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Created:
    """What this run created, to remove if it fails half-way."""

    templates: list[str] = field(default_factory=list)
    fleet_id: str | None = None


def _ensure_template(
    ec2: Ec2, spec: SpotFleetSpec, arch: str, image_id: str, existing: dict[str, dict[str, Any]],
    created: _Created, changes: list[str], dry: bool,
) -> plan.TemplateRef:
    name = plan.template_name(spec.name, arch)
    data = plan.launch_template_data(spec, image_id)
    action = f"spot fleet {spec.name}: launch template {name}"
    template = existing.get(name)
    if template is None:
        changes.append(f"create launch template {name} ({image_id})")
        if dry:
            return plan.TemplateRef(arch, f"<new {name}>", "1")
        with ec2_errors(action):
            made = ec2.client.create_launch_template(
                LaunchTemplateName=name, LaunchTemplateData=data,
                TagSpecifications=[{"ResourceType": "launch-template", "Tags": plan.tag_list(spec.instance_tags())}],
            )["LaunchTemplate"]
        created.templates.append(made["LaunchTemplateId"])
        return plan.TemplateRef(arch, made["LaunchTemplateId"], str(made["LatestVersionNumber"]))
    template_id = template["LaunchTemplateId"]
    with ec2_errors(action):
        latest = ec2.client.describe_launch_template_versions(
            LaunchTemplateId=template_id, Versions=["$Latest"])["LaunchTemplateVersions"][0]
    if plan.template_matches(data, dict(latest["LaunchTemplateData"])):
        return plan.TemplateRef(arch, template_id, str(latest["VersionNumber"]))
    changes.append(f"new version of launch template {name} ({image_id})")
    if dry:
        return plan.TemplateRef(arch, template_id, f"{latest['VersionNumber']}+1")
    with ec2_errors(action):
        version = ec2.client.create_launch_template_version(
            LaunchTemplateId=template_id, LaunchTemplateData=data)["LaunchTemplateVersion"]
        ec2.client.modify_launch_template(
            LaunchTemplateId=template_id, DefaultVersion=str(version["VersionNumber"]))
    return plan.TemplateRef(arch, template_id, str(version["VersionNumber"]))


def up(spec: SpotFleetSpec, wait_seconds: float = 600, dry: bool = False) -> UpResult:
    """Create the fleet or bring it to the spec; then wait until its target capacity runs."""
    started = time.monotonic()
    ec2 = connect(spec.region, spec.where)
    type_arch = instance_type_architectures(ec2, spec)
    arches = sorted(set(type_arch.values()))
    images = {arch: resolve_ami(ec2, spec.name, arch, spec.amis[arch]) for arch in arches}
    if spec.max_price is not None and spec.target_capacity > 0:
        check_max_price(ec2, spec)
    fleets = find_fleets(ec2, spec.name)
    if len(fleets) > 1:
        ids = ", ".join(f["FleetId"] for f in fleets)
        raise OperationFailed(f"spot fleet {spec.name}: {len(fleets)} EC2 fleets carry its tag ({ids}); run `down`")
    existing_templates = {t["LaunchTemplateName"]: t for t in find_templates(ec2, spec.name)}
    created = _Created()
    changes: list[str] = []
    try:
        refs = {
            arch: _ensure_template(ec2, spec, arch, images[arch], existing_templates, created, changes, dry)
            for arch in arches
        }
        configs = plan.launch_template_configs(spec, refs, type_arch)
        if not fleets:
            changes.append(f"create EC2 fleet ({plan.FLEET_TYPE}, {plan.ALLOCATION_STRATEGY}, "
                           f"{spec.target_capacity} spot)")
            if dry:
                return UpResult("<new>", changes)
            with ec2_errors(f"spot fleet {spec.name}: creating the EC2 fleet"):
                fleet_id = ec2.client.create_fleet(**plan.fleet_request(spec, configs))["FleetId"]
            created.fleet_id = fleet_id
        else:
            fleet_id = fleets[0]["FleetId"]
            change = plan.fleet_change(fleets[0], spec.target_capacity, configs)
            if change.capacity is not None:
                before = fleets[0]["TargetCapacitySpecification"]["TotalTargetCapacity"]
                changes.append(f"modify fleet {fleet_id}: target capacity {before} -> {change.capacity}")
            if change.configs is not None:
                changes.append(f"modify fleet {fleet_id}: launch template configs")
            if change.needed and not dry:
                with ec2_errors(f"spot fleet {spec.name}: modifying fleet {fleet_id}"):
                    ec2.client.modify_fleet(**change.modify_arguments(fleet_id))
        if dry:
            return UpResult(fleet_id, changes)
        instances = wait_for_capacity(ec2, spec, fleet_id, wait_seconds)
    except BaseException:
        if not dry:
            _roll_back(ec2, spec.name, created)
        raise
    return UpResult(fleet_id, changes, instances, time.monotonic() - started)


def running_fleet_instances(ec2: Ec2, spec: SpotFleetSpec, fleet_id: str) -> list[InstanceRow]:
    ids = set(fleet_instance_ids(ec2, fleet_id))
    return [r for r in tagged_instances(ec2, spec.name, ("pending", "running")) if r.instance_id in ids]


def wait_for_capacity(ec2: Ec2, spec: SpotFleetSpec, fleet_id: str, wait_seconds: float) -> list[InstanceRow]:
    deadline = time.monotonic() + wait_seconds
    said = -1
    while True:
        rows = running_fleet_instances(ec2, spec, fleet_id)
        running = [r for r in rows if r.state == "running"]
        if len(running) >= spec.target_capacity and len(rows) == len(running):
            return running
        if len(running) != said:
            say(f"spot fleet {spec.name}: {len(running)} of {spec.target_capacity} instances running")
            said = len(running)
        if time.monotonic() >= deadline:
            raise OperationFailed(
                f"spot fleet {spec.name}: insufficient spot capacity: {len(running)} of {spec.target_capacity} "
                f"instances running after {wait_seconds:g}s (fleet {fleet_id})"
            )
        time.sleep(POLL_SECONDS)


def _roll_back(ec2: Ec2, name: str, created: _Created) -> None:
    """Remove what a failed ``up`` created (a fleet it made, templates it made); never what was there before."""
    if created.fleet_id:
        say(f"spot fleet {name}: removing fleet {created.fleet_id} created by this failed run")
        _delete_fleets(ec2, name, [created.fleet_id])
        _terminate_and_cancel(ec2, name, wait_seconds=120)
    for template_id in created.templates:
        say(f"spot fleet {name}: removing launch template {template_id} created by this failed run")
        with ec2_errors(f"spot fleet {name}: deleting launch template {template_id}"):
            ec2.client.delete_launch_template(LaunchTemplateId=template_id)


# --- status ----------------------------------------------------------------------------------------------------


@dataclass
class Status:
    name: str
    region: str
    fleets: list[dict[str, Any]]
    instances: list[InstanceRow]
    fleet_instance_ids: set[str]
    templates: list[dict[str, Any]]
    requests: list[dict[str, Any]]

    @property
    def leftovers(self) -> list[str]:
        """Things that belong to the fleet but that its one live EC2 fleet does not account for."""
        items = [f"fleet {f['FleetId']} ({f['FleetState']}, a second one)" for f in self.fleets[1:]]
        items += [f"instance {r.instance_id} ({r.state}, not in the fleet)" for r in self.instances
                  if r.instance_id not in self.fleet_instance_ids]
        items += [f"spot request {r['SpotInstanceRequestId']} ({r['State']})" for r in self.requests
                  if r.get("InstanceId") not in self.fleet_instance_ids]
        if not self.fleets:
            items += [f"launch template {t['LaunchTemplateName']} ({t['LaunchTemplateId']})" for t in self.templates]
        return items


def status(spec: SpotFleetSpec) -> Status:
    ec2 = connect(spec.region, spec.where)
    fleets = find_fleets(ec2, spec.name)
    ids: set[str] = set()
    for fleet in fleets:
        ids.update(fleet_instance_ids(ec2, fleet["FleetId"]))
    instances = tagged_instances(ec2, spec.name)
    live_ids = {r.instance_id for r in instances} & ids
    return Status(
        name=spec.name, region=ec2.region, fleets=fleets, instances=instances, fleet_instance_ids=live_ids,
        templates=find_templates(ec2, spec.name),
        requests=find_requests(ec2, spec.name, [r.instance_id for r in instances]),
    )


# --- down ------------------------------------------------------------------------------------------------------


def _delete_fleets(ec2: Ec2, name: str, fleet_ids: list[str]) -> None:
    if not fleet_ids:
        return
    with ec2_errors(f"spot fleet {name}: deleting fleets"):
        answer = ec2.client.delete_fleets(FleetIds=fleet_ids, TerminateInstances=True)
    failed = answer.get("UnsuccessfulFleetDeletions", [])
    if failed:
        first = failed[0]
        raise OperationFailed(f"spot fleet {name}: cannot delete {first.get('FleetId')}: {first.get('Error')}")


def _terminate_and_cancel(ec2: Ec2, name: str, wait_seconds: float) -> list[str]:
    """Terminate the fleet's remaining instances, cancel its spot requests, wait for the instances to go."""
    done = []
    rows = tagged_instances(ec2, name, (*plan.LIVE_STATES, "terminated"))
    instances = [r for r in rows if r.state in plan.LIVE_STATES]
    requests = find_requests(ec2, name, [r.instance_id for r in rows])
    if requests:
        ids = [r["SpotInstanceRequestId"] for r in requests]
        with ec2_errors(f"spot fleet {name}: cancelling spot requests"):
            ec2.client.cancel_spot_instance_requests(SpotInstanceRequestIds=ids)
        done.append(f"cancelled {len(ids)} spot request(s)")
    alive = [r.instance_id for r in instances if r.state != "shutting-down"]
    if alive:
        with ec2_errors(f"spot fleet {name}: terminating instances"):
            ec2.client.terminate_instances(InstanceIds=alive)
        done.append(f"terminated {len(alive)} instance(s)")
    deadline = time.monotonic() + wait_seconds
    while tagged_instances(ec2, name):
        if time.monotonic() >= deadline:
            raise OperationFailed(f"spot fleet {name}: instances still not terminated after {wait_seconds:g}s")
        time.sleep(POLL_SECONDS)
    return done


def down(spec: SpotFleetSpec, wait_seconds: float = 600, dry: bool = False) -> list[str]:
    """Delete the fleet, terminate its instances, cancel its requests, delete its templates. Returns what it did."""
    if dry:
        current = status(spec)
        plan_lines = [f"delete fleet {f['FleetId']}" for f in current.fleets]
        plan_lines += [f"terminate {r.instance_id}" for r in current.instances]
        plan_lines += [f"cancel {r['SpotInstanceRequestId']}" for r in current.requests]
        plan_lines += [f"delete launch template {t['LaunchTemplateName']}" for t in current.templates]
        return plan_lines
    ec2 = connect(spec.region, spec.where)
    fleets = find_fleets(ec2, spec.name)
    templates = find_templates(ec2, spec.name)
    done = []
    if fleets:
        _delete_fleets(ec2, spec.name, [f["FleetId"] for f in fleets])
        done.append(f"deleted fleet(s) {', '.join(f['FleetId'] for f in fleets)}")
    done += _terminate_and_cancel(ec2, spec.name, wait_seconds)
    for template in templates:
        with ec2_errors(f"spot fleet {spec.name}: deleting launch template {template['LaunchTemplateName']}"):
            ec2.client.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])
        done.append(f"deleted launch template {template['LaunchTemplateName']}")
    return done
