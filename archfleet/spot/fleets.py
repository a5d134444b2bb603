"""``up`` (create or reconcile), ``status`` and ``down`` of one spot fleet against an EC2 endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from archfleet.errors import ArchfleetError, InputError, OperationFailed
from archfleet.fleet.spot import AmiSource, SpotFleetSpec
from archfleet.run import say
from archfleet.spot import plan
from archfleet.spot.connection import AwsClient, connect, ssm_client, tag_filter
from archfleet.spot.discovery import InstanceRow, tagged_instances
from archfleet.spot.instance_types import instance_type_architectures, require_amis
from archfleet.spot.user_data import RELEASE_TAG

POLL_SECONDS = 2.0
SSM_STANDARD_LIMIT = 4096  # characters of a Standard-tier parameter value; longer ones are Advanced (8 KB)


# --- what EC2 knows about the spec's inputs ------------------------------------------------------------------


def resolve_ami(ec2: AwsClient, fleet: str, arch: str, source: AmiSource) -> str:
    """The AMI id for an architecture (from an id, an SSM parameter or a filter), checked to exist and match."""
    action = f"{source.where}: spot_fleets.{fleet}.ami.{arch} ({source.describe()})"
    image_id = source.image_id
    if source.ssm_parameter:
        ssm = ssm_client(ec2, action)
        with ssm.errors(action):
            image_id = ssm.client.get_parameter(Name=source.ssm_parameter)["Parameter"]["Value"]
    if image_id:
        with ec2.errors(action):
            images = ec2.client.describe_images(ImageIds=[image_id])["Images"]
    else:
        filters: Any = [{"Name": "name", "Values": [source.name_filter]}, {"Name": "state", "Values": ["available"]}]
        with ec2.errors(action):
            images = ec2.client.describe_images(Filters=filters, Owners=[source.owner] if source.owner else [])[
                "Images"]
        images = [i for i in images if plan.arch_of([i.get("Architecture", "")]) == arch]
        images.sort(key=lambda i: (i.get("CreationDate", ""), i["ImageId"]), reverse=True)
    if not images:
        raise InputError(f"{action}: no such image {ec2.note}")
    image = images[0]
    if plan.arch_of([image.get("Architecture", "")]) != arch:
        raise InputError(f"{action}: image {image['ImageId']} is {image.get('Architecture')}, not {arch} {ec2.note}")
    return str(image["ImageId"])


def check_max_price(ec2: AwsClient, spec: SpotFleetSpec) -> None:
    """With a max price under every pool's current price EC2 would launch nothing: say so before creating anything."""
    from archfleet.spot.prices import pool_prices

    prices, choice = pool_prices(ec2, spec)
    if prices and choice is None:
        low = prices[0]
        raise OperationFailed(
            f"{spec.where}: spot fleet {spec.name}: insufficient spot capacity at max_price {spec.max_price:g}: "
            f"the cheapest pool is {low.instance_type} in {low.availability_zone} at {low.price:g} USD/hour {ec2.note}"
        )


@dataclass(frozen=True)
class CheckedFleet:
    """A spot fleet spec checked against EC2 (read-only calls): its instance types exist and are offered, and for
    ``up`` its AMIs resolve and its max price buys something. Commands check every selected fleet first, so bad
    input stops them before any fleet is created or removed."""

    spec: SpotFleetSpec
    ec2: AwsClient
    type_arch: dict[str, str]  # instance type -> arm64 | amd64
    images: dict[str, str] = field(default_factory=dict)  # arch -> AMI id (for up)


def check_fleet(spec: SpotFleetSpec, for_up: bool = False) -> CheckedFleet:
    ec2 = connect(spec.region, spec.where)
    type_arch = instance_type_architectures(ec2, spec)
    if not for_up:
        return CheckedFleet(spec, ec2, type_arch)
    require_amis(spec, type_arch)
    images = {arch: resolve_ami(ec2, spec.name, arch, spec.amis[arch]) for arch in sorted(set(type_arch.values()))}
    if spec.max_price is not None and spec.target_capacity > 0:
        check_max_price(ec2, spec)
    return CheckedFleet(spec, ec2, type_arch, images)


# --- finding what belongs to a fleet ---------------------------------------------------------------------------


def find_fleets(ec2: AwsClient, name: str, include_gone: bool = False) -> list[dict[str, Any]]:
    fleets: list[dict[str, Any]] = []
    with ec2.errors(f"spot fleet {name}: listing fleets"):
        for page in ec2.client.get_paginator("describe_fleets").paginate():
            for fleet in page["Fleets"]:
                if plan.tag_dict(fleet.get("Tags")).get(plan.FLEET_TAG) != name:
                    continue
                if include_gone or fleet["FleetState"] not in plan.GONE_FLEET_STATES:
                    fleets.append(dict(fleet))
    return fleets


def find_templates(ec2: AwsClient, name: str) -> list[dict[str, Any]]:
    with ec2.errors(f"spot fleet {name}: listing launch templates"):
        answer = ec2.client.describe_launch_templates(Filters=tag_filter(plan.FLEET_TAG, name))
    return [dict(t) for t in answer["LaunchTemplates"]]


def find_requests(ec2: AwsClient, name: str, instance_ids: list[str]) -> list[dict[str, Any]]:
    """Open or active spot requests of the fleet: tagged with it, or holding one of its instances."""
    requests: list[Any] = []
    with ec2.errors(f"spot fleet {name}: listing spot requests"):
        for page in ec2.client.get_paginator("describe_spot_instance_requests").paginate():
            requests.extend(page["SpotInstanceRequests"])
    return [
        dict(r) for r in requests
        if r.get("State") in plan.OPEN_REQUEST_STATES
        and (plan.tag_dict(r.get("Tags")).get(plan.FLEET_TAG) == name or r.get("InstanceId") in instance_ids)
    ]


def fleet_instance_ids(ec2: AwsClient, fleet_id: str) -> list[str]:
    with ec2.errors(f"fleet {fleet_id}: listing its instances"):
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
    ec2: AwsClient, spec: SpotFleetSpec, arch: str, image_id: str, existing: dict[str, dict[str, Any]],
    created: _Created, changes: list[str], dry: bool, user_data: str | None = None,
) -> plan.TemplateRef:
    name = plan.template_name(spec.name, arch)
    data = plan.launch_template_data(spec, image_id, user_data)
    action = f"spot fleet {spec.name}: launch template {name}"
    template = existing.get(name)
    if template is None:
        changes.append(f"create launch template {name} ({image_id})")
        if dry:
            return plan.TemplateRef(arch, f"<new {name}>", "1")
        with ec2.errors(action):
            made = ec2.client.create_launch_template(
                LaunchTemplateName=name, LaunchTemplateData=data,
                TagSpecifications=[{"ResourceType": "launch-template", "Tags": plan.tag_list(spec.instance_tags())}],
            )["LaunchTemplate"]
        created.templates.append(made["LaunchTemplateId"])
        return plan.TemplateRef(arch, made["LaunchTemplateId"], str(made["LatestVersionNumber"]))
    template_id = template["LaunchTemplateId"]
    with ec2.errors(action):
        latest = ec2.client.describe_launch_template_versions(
            LaunchTemplateId=template_id, Versions=["$Latest"])["LaunchTemplateVersions"][0]
    if plan.template_matches(data, dict(latest["LaunchTemplateData"])):
        return plan.TemplateRef(arch, template_id, str(latest["VersionNumber"]))
    changes.append(f"new version of launch template {name} ({image_id})")
    if dry:
        return plan.TemplateRef(arch, template_id, f"{latest['VersionNumber']}+1")
    with ec2.errors(action):
        version = ec2.client.create_launch_template_version(
            LaunchTemplateId=template_id, LaunchTemplateData=data)["LaunchTemplateVersion"]
        ec2.client.modify_launch_template(
            LaunchTemplateId=template_id, DefaultVersion=str(version["VersionNumber"]))
    return plan.TemplateRef(arch, template_id, str(version["VersionNumber"]))


def up(checked: CheckedFleet, wait_seconds: float = 600, dry: bool = False,
       user_data: dict[str, str] | None = None) -> UpResult:
    """Create the fleet or bring it to the spec; then wait until its target capacity runs. ``user_data``: per
    architecture, the UserData its launch template carries (archfleet.spot.joining; the release it boots is
    published first, by archfleet.spot.release)."""
    started = time.monotonic()
    spec, ec2, type_arch, images = checked.spec, checked.ec2, checked.type_arch, checked.images
    arches = sorted(images)
    fleets = find_fleets(ec2, spec.name)
    if len(fleets) > 1:
        ids = ", ".join(f["FleetId"] for f in fleets)
        raise OperationFailed(f"spot fleet {spec.name}: {len(fleets)} EC2 fleets carry its tag ({ids}); run `down` "
                              f"{ec2.note}")
    existing_templates = {t["LaunchTemplateName"]: t for t in find_templates(ec2, spec.name)}
    created = _Created()
    changes: list[str] = []
    user_data = user_data or {}
    try:
        refs = {
            arch: _ensure_template(ec2, spec, arch, images[arch], existing_templates, created, changes, dry,
                                   user_data.get(arch))
            for arch in arches
        }
        configs = plan.launch_template_configs(spec, refs, type_arch)
        if not fleets:
            changes.append(f"create EC2 fleet ({plan.FLEET_TYPE}, {plan.ALLOCATION_STRATEGY}, "
                           f"{spec.target_capacity} spot)")
            if dry:
                return UpResult("<new>", changes)
            with ec2.errors(f"spot fleet {spec.name}: creating the EC2 fleet"):
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
                with ec2.errors(f"spot fleet {spec.name}: modifying fleet {fleet_id}"):
                    ec2.client.modify_fleet(**change.modify_arguments(fleet_id))
        if dry:
            return UpResult(fleet_id, changes)
        instances = wait_for_capacity(ec2, spec, fleet_id, wait_seconds)
    except BaseException:
        if not dry:
            _roll_back(ec2, spec.name, created)
        raise
    return UpResult(fleet_id, changes, instances, time.monotonic() - started)


def running_fleet_instances(ec2: AwsClient, spec: SpotFleetSpec, fleet_id: str) -> list[InstanceRow]:
    ids = set(fleet_instance_ids(ec2, fleet_id))
    return [r for r in tagged_instances(ec2, spec.name, ("pending", "running")) if r.instance_id in ids]


def wait_for_capacity(ec2: AwsClient, spec: SpotFleetSpec, fleet_id: str, wait_seconds: float) -> list[InstanceRow]:
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
                f"instances running after {wait_seconds:g}s (fleet {fleet_id}) {ec2.note}"
            )
        time.sleep(POLL_SECONDS)


def _roll_back(ec2: AwsClient, name: str, created: _Created) -> None:
    """Remove what a failed ``up`` created (a fleet it made, templates it made); never what was there before.
    Goes on past a failed call (said on stderr) so that the error that stopped ``up`` is the one reported."""
    removal = Removal(ec2, name)
    if created.fleet_id:
        fleet_id = created.fleet_id
        say(f"spot fleet {name}: removing fleet {fleet_id} created by this failed run")
        removal.attempt(lambda: _delete_fleets(ec2, name, [fleet_id]))
        removal.attempt(lambda: _cancel_requests(ec2, name))
        removal.attempt(lambda: _terminate_instances(ec2, name))
        if not removal.failures:
            removal.attempt(lambda: _wait_until_terminated(ec2, name, 120))
    for template_id in created.templates:
        say(f"spot fleet {name}: removing launch template {template_id} created by this failed run")
        removal.attempt(partial(_delete_template, ec2, name, template_id, template_id))


def store_parameters(ec2: AwsClient, spec: SpotFleetSpec, parameters: dict[str, str]) -> list[str]:
    """Write the SecureString parameters whose value changed (one read each); the names of those written. Pruned
    by archfleet.spot.release once no kept release reads them."""
    ssm = ssm_client(ec2, f"spot fleet {spec.name}: SSM parameters")
    written = []
    for name, value in sorted(parameters.items()):
        with ssm.errors(f"spot fleet {spec.name}: SSM parameter {name}"):
            try:
                current = ssm.client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
            except ssm.client.exceptions.ParameterNotFound:
                current = None
            if current == value:
                continue
            ssm.client.put_parameter(
                Name=name, Value=value, Type="SecureString", Overwrite=True,
                Tier="Advanced" if len(value) > SSM_STANDARD_LIMIT else "Standard",
                Description=f"archfleet spot fleet {spec.name}: read at first boot with the instance role",
            )
        written.append(name)
    return written


# --- status ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leftover:
    """Something that belongs to a fleet (by its tag), as named in ``status`` and in what ``down`` left."""

    kind: str  # fleet | instance | spot_request | launch_template
    id: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind.replace('_', ' ')} {self.id} ({self.detail})"

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "detail": self.detail}


@dataclass
class Status:
    name: str
    region: str
    endpoint: str
    fleets: list[dict[str, Any]]
    instances: list[InstanceRow]
    members: dict[str, set[str]]  # fleet id -> ids of its live instances
    templates: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    current_release: str | None = None  # the release new instances boot (user-data fleets: archfleet.spot.release)
    release_summary: str = ""  # who published it, when

    @property
    def fleet_instance_ids(self) -> set[str]:
        return set().union(*self.members.values()) if self.members else set()

    def fleet_of(self, instance_id: str) -> str | None:
        return next((fleet_id for fleet_id, ids in self.members.items() if instance_id in ids), None)

    @property
    def leftovers(self) -> list[Leftover]:
        """Things that belong to the fleet but that its one live EC2 fleet does not account for."""
        in_fleets = self.fleet_instance_ids
        items = [Leftover("fleet", f["FleetId"], f"{f['FleetState']}, a second one") for f in self.fleets[1:]]
        items += [Leftover("instance", r.instance_id, f"{r.state}, not in the fleet") for r in self.instances
                  if r.instance_id not in in_fleets]
        items += [Leftover("spot_request", r["SpotInstanceRequestId"], r["State"]) for r in self.requests
                  if r.get("InstanceId") not in in_fleets]
        if not self.fleets:
            items += [Leftover("launch_template", t["LaunchTemplateName"], t["LaunchTemplateId"])
                      for t in self.templates]
        return items

    @property
    def everything(self) -> list[Leftover]:
        """All that still belongs to the fleet: what ``down`` removes, and what it reports when it could not."""
        items = [Leftover("fleet", f["FleetId"], f["FleetState"]) for f in self.fleets]
        items += [Leftover("instance", r.instance_id, r.state) for r in self.instances]
        items += [Leftover("spot_request", r["SpotInstanceRequestId"], r["State"]) for r in self.requests]
        items += [Leftover("launch_template", t["LaunchTemplateName"], t["LaunchTemplateId"]) for t in self.templates]
        return items

    def as_json(self, address: str = "auto") -> dict[str, Any]:
        """The ``spot status --json`` document of one fleet."""
        return {
            "name": self.name,
            "region": self.region,
            "endpoint": self.endpoint,
            "current_release": self.current_release or None,
            "fleets": [{
                "id": f["FleetId"],
                "state": f["FleetState"],
                "type": f.get("Type"),
                "target_capacity": f.get("TargetCapacitySpecification", {}).get("TotalTargetCapacity"),
                "running": len(self.members.get(f["FleetId"], ())),
            } for f in self.fleets],
            "instances": [{
                "id": r.instance_id,
                "type": r.instance_type,
                "arch": r.arch,
                "az": r.availability_zone,
                "lifecycle": r.lifecycle,
                "state": r.state,
                "address": r.address(address),
                "fleet": self.fleet_of(r.instance_id),
                "release": r.tags.get(RELEASE_TAG),  # the release it booted (its own tag), None: not recorded
            } for r in self.instances],
            "leftovers": [item.as_json() for item in self.leftovers],
        }


def read_status(ec2: AwsClient, name: str) -> Status:
    fleets = find_fleets(ec2, name)
    instances = tagged_instances(ec2, name)
    live = {r.instance_id for r in instances}
    members = {f["FleetId"]: set(fleet_instance_ids(ec2, f["FleetId"])) & live for f in fleets}
    return Status(
        name=name, region=ec2.region, endpoint=ec2.endpoint, fleets=fleets, instances=instances, members=members,
        templates=find_templates(ec2, name), requests=find_requests(ec2, name, sorted(live)),
    )


def status(checked: CheckedFleet) -> Status:
    return read_status(checked.ec2, checked.spec.name)


# --- down ------------------------------------------------------------------------------------------------------


class Removal:
    """Steps of a removal that go on past a failed call: each failure is said on stderr and kept."""

    def __init__(self, ec2: AwsClient, name: str) -> None:
        self.ec2 = ec2
        self.name = name
        self.done: list[str] = []
        self.failures: list[str] = []

    def attempt(self, step: Callable[[], list[str]]) -> None:
        try:
            self.done += step()
        except ArchfleetError as error:  # a failed call: say it and go on with the next step
            say(f"spot fleet {self.name}: FAILED: {error}")
            self.failures.append(str(error))


@dataclass
class DownResult:
    done: list[str]
    failures: list[str]  # one line per failed call
    left: list[Leftover] | None  # what still belongs to the fleet afterwards; None: the last listing failed
    endpoint_note: str  # (EC2 endpoint URL)

    @property
    def complete(self) -> bool:
        """Nothing belongs to the fleet any more (a failed call whose work was done anyway does not count)."""
        return self.left == []


def _delete_fleets(ec2: AwsClient, name: str, fleet_ids: list[str]) -> list[str]:
    if not fleet_ids:
        return []
    with ec2.errors(f"spot fleet {name}: deleting fleet(s) {', '.join(fleet_ids)}"):
        answer = ec2.client.delete_fleets(FleetIds=fleet_ids, TerminateInstances=True)
    failed = answer.get("UnsuccessfulFleetDeletions", [])
    deleted = [f["FleetId"] for f in answer.get("SuccessfulFleetDeletions", [])]
    if failed:
        first = failed[0]
        raise OperationFailed(f"spot fleet {name}: cannot delete {first.get('FleetId')}: {first.get('Error')} "
                              f"{ec2.note}")
    return [f"deleted fleet(s) {', '.join(deleted or fleet_ids)}"]


def _cancel_requests(ec2: AwsClient, name: str) -> list[str]:
    """Cancel the fleet's open spot requests (tagged with it, or holding one of its instances, even terminated)."""
    rows = tagged_instances(ec2, name, (*plan.LIVE_STATES, "terminated"))
    requests = find_requests(ec2, name, [r.instance_id for r in rows])
    if not requests:
        return []
    ids = [r["SpotInstanceRequestId"] for r in requests]
    with ec2.errors(f"spot fleet {name}: cancelling spot requests {', '.join(ids)}"):
        ec2.client.cancel_spot_instance_requests(SpotInstanceRequestIds=ids)
    return [f"cancelled {len(ids)} spot request(s)"]


def _terminate_instances(ec2: AwsClient, name: str) -> list[str]:
    alive = [r.instance_id for r in tagged_instances(ec2, name) if r.state != "shutting-down"]
    if not alive:
        return []
    with ec2.errors(f"spot fleet {name}: terminating instances {', '.join(alive)}"):
        ec2.client.terminate_instances(InstanceIds=alive)
    return [f"terminated {len(alive)} instance(s)"]


def _delete_template(ec2: AwsClient, name: str, template_id: str, template_name: str) -> list[str]:
    with ec2.errors(f"spot fleet {name}: deleting launch template {template_name}"):
        ec2.client.delete_launch_template(LaunchTemplateId=template_id)
    return [f"deleted launch template {template_name}"]


def fleet_parameters(ec2: AwsClient, spec: SpotFleetSpec) -> list[str]:
    """The SecureString parameters ``spot up`` keeps for a fleet with user-data (everything under its prefix)."""
    if not spec.user_data:
        return []
    ssm = ssm_client(ec2, f"spot fleet {spec.name}: SSM parameters")
    names: list[str] = []
    with ssm.errors(f"spot fleet {spec.name}: listing SSM parameters under {spec.parameter_prefix}"):
        for page in ssm.client.get_paginator("get_parameters_by_path").paginate(
                Path=spec.parameter_prefix, Recursive=True):
            names += [p["Name"] for p in page["Parameters"]]
    return sorted(names)


def delete_named_parameters(ec2: AwsClient, spec: SpotFleetSpec, names: list[str], which: str = "") -> None:
    if not names:
        return
    ssm = ssm_client(ec2, f"spot fleet {spec.name}: SSM parameters")
    with ssm.errors(f"spot fleet {spec.name}: deleting SSM parameters {which + ' ' if which else ''}under "
                    f"{spec.parameter_prefix}"):
        for start in range(0, len(names), 10):  # DeleteParameters takes ten at a time
            ssm.client.delete_parameters(Names=names[start:start + 10])


def _delete_parameters(ec2: AwsClient, spec: SpotFleetSpec) -> list[str]:
    names = fleet_parameters(ec2, spec)
    if not names:
        return []
    delete_named_parameters(ec2, spec, names)
    return [f"deleted {len(names)} SSM parameter(s) under {spec.parameter_prefix}"]


def _wait_until_terminated(ec2: AwsClient, name: str, wait_seconds: float) -> list[str]:
    deadline = time.monotonic() + wait_seconds
    while tagged_instances(ec2, name):
        if time.monotonic() >= deadline:
            raise OperationFailed(f"spot fleet {name}: instances still not terminated after {wait_seconds:g}s "
                                  f"{ec2.note}")
        time.sleep(POLL_SECONDS)
    return []


def down_plan(checked: CheckedFleet) -> list[str]:
    """What ``down`` would remove (``--dry``), from one status lookup."""
    current = status(checked)
    lines = [f"delete fleet {f['FleetId']}" for f in current.fleets]
    lines += [f"terminate {r.instance_id}" for r in current.instances]
    lines += [f"cancel {r['SpotInstanceRequestId']}" for r in current.requests]
    lines += [f"delete launch template {t['LaunchTemplateName']}" for t in current.templates]
    lines += [f"delete SSM parameter {name}" for name in fleet_parameters(checked.ec2, checked.spec)]
    return lines


def down(checked: CheckedFleet, wait_seconds: float = 600) -> DownResult:
    """Delete the fleet (terminating its instances), cancel its spot requests, terminate stray instances, delete
    its launch templates and (user_data) its SSM parameters. A failed call does not stop the rest; afterwards,
    what still belongs to the fleet is listed again, so a second ``down`` finishes the job."""
    spec, ec2 = checked.spec, checked.ec2
    removal = Removal(ec2, spec.name)
    fleet_ids: list[str] = []
    template_refs: list[tuple[str, str]] = []

    def list_fleets() -> list[str]:
        fleet_ids.extend(f["FleetId"] for f in find_fleets(ec2, spec.name))
        return []

    def list_templates() -> list[str]:
        template_refs.extend((t["LaunchTemplateId"], t["LaunchTemplateName"]) for t in find_templates(ec2, spec.name))
        return []

    removal.attempt(list_fleets)
    removal.attempt(list_templates)
    removal.attempt(lambda: _delete_fleets(ec2, spec.name, fleet_ids))
    removal.attempt(lambda: _cancel_requests(ec2, spec.name))
    removal.attempt(lambda: _terminate_instances(ec2, spec.name))
    for template_id, template_name in template_refs:
        removal.attempt(partial(_delete_template, ec2, spec.name, template_id, template_name))
    removal.attempt(lambda: _delete_parameters(ec2, spec))
    if not removal.failures:  # with a fleet still there, waiting for its instances to go could take forever
        removal.attempt(lambda: _wait_until_terminated(ec2, spec.name, wait_seconds))
    left: list[list[Leftover]] = []

    def list_left() -> list[str]:
        left.append(read_status(ec2, spec.name).everything)
        return []

    removal.attempt(list_left)
    return DownResult(removal.done, removal.failures, left[0] if left else None, ec2.note)
