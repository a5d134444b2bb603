"""Pure builders: the launch-template data and fleet request a spot fleet spec asks for, and the comparisons
that decide whether EC2 already has them. Nothing here talks to EC2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archfleet.fleet.spot import TAG_PREFIX, SpotFleetSpec

FLEET_TAG = f"{TAG_PREFIX}fleet"
ALLOCATION_STRATEGY = "price-capacity-optimized"
FLEET_TYPE = "maintain"  # the only EC2 Fleet type that ModifyFleet accepts, and the one that replaces interruptions
# EC2 architecture names -> ours.
EC2_ARCHITECTURES = {"arm64": "arm64", "x86_64": "amd64"}
# Instance states that still count as "there".
LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")
GONE_FLEET_STATES = ("deleted", "deleted_running", "deleted_terminating", "failed")
OPEN_REQUEST_STATES = ("open", "active", "disabled")


def template_name(fleet: str, arch: str) -> str:
    return f"archfleet-{fleet}-{arch}"


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


def launch_template_data(spec: SpotFleetSpec, image_id: str, user_data: str | None = None) -> dict[str, Any]:
    """What each launch template holds: image, key, security groups, the fleet's tags on what it launches, the
    instance profile and the user-data (base64: archfleet.spot.user_data). The metadata service answers IMDSv2
    only, with a hop limit of 1: a container on a bridge network (one hop more) cannot reach the instance role's
    credentials."""
    tags = tag_list(spec.instance_tags())
    data: dict[str, Any] = {
        "ImageId": image_id,
        "TagSpecifications": [
            {"ResourceType": kind, "Tags": tags} for kind in ("instance", "volume", "spot-instances-request")
        ],
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"},
    }
    if user_data is not None:
        data["UserData"] = user_data
    if spec.instance_profile:
        data["IamInstanceProfile"] = {"Name": spec.instance_profile}
    if spec.key_pair:
        data["KeyName"] = spec.key_pair
    if spec.security_groups:
        data["SecurityGroupIds"] = list(spec.security_groups)
    return data


def template_matches(wanted: dict[str, Any], current: dict[str, Any]) -> bool:
    """Does the template's current version hold what we want? Keys EC2 adds on its own are ignored."""
    for key, value in wanted.items():
        if key == "TagSpecifications":
            have = {t["ResourceType"]: sorted(map(repr, t.get("Tags", []))) for t in current.get(key, [])}
            for spec in value:
                if have.get(spec["ResourceType"]) != sorted(map(repr, spec["Tags"])):
                    return False
        elif key == "MetadataOptions":
            have_options = current.get(key, {})
            if any(have_options.get(k) != v for k, v in value.items()):
                return False
        elif key == "SecurityGroupIds":
            if sorted(current.get(key, [])) != sorted(value):
                return False
        elif current.get(key) != value:
            return False
    return True


@dataclass(frozen=True)
class TemplateRef:
    arch: str
    template_id: str
    version: str


def launch_template_configs(
    spec: SpotFleetSpec, templates: dict[str, TemplateRef], type_arch: dict[str, str]
) -> list[dict[str, Any]]:
    """One config per architecture, each with an override per instance type (and subnet) in preference order.

    ``Priority`` records the preference (0 = most preferred); price-capacity-optimized weighs price and
    capacity first, so it is a preference, not a guarantee.
    """
    configs = []
    for arch in sorted(templates, key=lambda a: min(
            i for i, t in enumerate(spec.instance_types) if type_arch[t] == a)):
        ref = templates[arch]
        overrides = []
        for priority, instance_type in enumerate(spec.instance_types):
            if type_arch[instance_type] != arch:
                continue
            for subnet in spec.subnets or (None,):
                override: dict[str, Any] = {"InstanceType": instance_type, "Priority": float(priority)}
                if subnet:
                    override["SubnetId"] = subnet
                if spec.max_price is not None:
                    override["MaxPrice"] = f"{spec.max_price:g}"
                overrides.append(override)
        configs.append({
            "LaunchTemplateSpecification": {"LaunchTemplateId": ref.template_id, "Version": ref.version},
            "Overrides": overrides,
        })
    return configs


def capacity_specification(capacity: int) -> dict[str, Any]:
    return {"TotalTargetCapacity": capacity, "SpotTargetCapacity": capacity, "DefaultTargetCapacityType": "spot"}


def fleet_request(spec: SpotFleetSpec, configs: list[dict[str, Any]]) -> dict[str, Any]:
    """The keyword arguments of ``create_fleet``."""
    return {
        "Type": FLEET_TYPE,
        "SpotOptions": {"AllocationStrategy": ALLOCATION_STRATEGY, "InstanceInterruptionBehavior": "terminate"},
        "LaunchTemplateConfigs": configs,
        "TargetCapacitySpecification": capacity_specification(spec.target_capacity),
        "ExcessCapacityTerminationPolicy": "termination",
        "ReplaceUnhealthyInstances": False,
        "TagSpecifications": [{"ResourceType": "fleet", "Tags": tag_list(spec.instance_tags())}],
    }


def normalized_configs(configs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Launch-template configs in a comparable form (EC2 echoes them back with its own formatting)."""
    result = []
    for config in configs:
        lt = config["LaunchTemplateSpecification"]
        overrides = tuple(
            (o.get("InstanceType"), o.get("SubnetId"), float(o.get("Priority", 0)),
             f"{float(o['MaxPrice']):g}" if o.get("MaxPrice") else None)
            for o in config.get("Overrides", [])
        )
        result.append((lt.get("LaunchTemplateId"), str(lt.get("Version")), overrides))
    return result


@dataclass(frozen=True)
class FleetChange:
    """What ``up`` does to an existing fleet: nothing, a new capacity, new launch-template configs, or both."""

    capacity: int | None = None
    configs: list[dict[str, Any]] | None = None

    @property
    def needed(self) -> bool:
        return self.capacity is not None or self.configs is not None

    def modify_arguments(self, fleet_id: str) -> dict[str, Any]:
        arguments: dict[str, Any] = {"FleetId": fleet_id}
        if self.capacity is not None:
            arguments["TargetCapacitySpecification"] = {"TotalTargetCapacity": self.capacity}
        if self.configs is not None:
            arguments["LaunchTemplateConfigs"] = self.configs
        return arguments


def fleet_change(existing: dict[str, Any], capacity: int, configs: list[dict[str, Any]]) -> FleetChange:
    current_capacity = int(existing.get("TargetCapacitySpecification", {}).get("TotalTargetCapacity", -1))
    same_configs = normalized_configs(existing.get("LaunchTemplateConfigs", [])) == normalized_configs(configs)
    return FleetChange(
        capacity=None if current_capacity == capacity else capacity,
        configs=None if same_configs else configs,
    )


def arch_of(ec2_architectures: list[str]) -> str | None:
    for name in ec2_architectures:
        if name in EC2_ARCHITECTURES:
            return EC2_ARCHITECTURES[name]
    return None
