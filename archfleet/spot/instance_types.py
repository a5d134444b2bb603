"""The declared instance types checked against EC2 before any spot command acts: each must be a type EC2 knows
(DescribeInstanceTypes) and offers in the fleet's region (DescribeInstanceTypeOfferings), arm64 or x86_64.

Every spot command (up, status, down, prices) runs this first; a bad type is an InputError (exit 2) naming the
type, its place in ``instance_types`` and the fleet file's line, before anything is created or removed.
"""

from __future__ import annotations

import botocore.exceptions

from archfleet.errors import InputError
from archfleet.fleet.spot import SpotFleetSpec
from archfleet.spot import plan
from archfleet.spot.connection import AwsClient, error_code


def offered_types(ec2: AwsClient, spec: SpotFleetSpec) -> set[str]:
    with ec2.errors(f"spot fleet {spec.name}: describing instance type offerings"):
        answer = ec2.client.describe_instance_type_offerings(
            LocationType="region", Filters=[{"Name": "instance-type", "Values": list(spec.instance_types)}],
        )
    return {o["InstanceType"] for o in answer["InstanceTypeOfferings"]}


def is_known_type(ec2: AwsClient, spec: SpotFleetSpec, instance_type: str) -> bool:
    """Does EC2 know the type at all (offered in some region or not)?"""
    try:
        ec2.client.describe_instance_types(InstanceTypes=[instance_type])
    except botocore.exceptions.ClientError as error:
        if error_code(error).startswith("InvalidInstanceType"):
            return False
        with ec2.errors(f"spot fleet {spec.name}: describing instance type {instance_type}"):
            raise
    return True


def type_problem(ec2: AwsClient, spec: SpotFleetSpec, instance_type: str) -> str:
    """Why a type that is not offered in the region is refused: unknown to EC2, or only not offered there."""
    index = spec.instance_types.index(instance_type)
    if is_known_type(ec2, spec, instance_type):
        reason = f"not offered in {ec2.region}"
    else:
        reason = "EC2 has no such instance type"
    return f"spot_fleets.{spec.name}.instance_types[{index}]: {instance_type}: {reason}"


def instance_type_architectures(ec2: AwsClient, spec: SpotFleetSpec) -> dict[str, str]:
    """Each declared type's architecture (arm64/amd64). A type EC2 does not know, does not offer in the region,
    or that is neither arm64 nor x86_64 is an InputError naming it (all of them, on one line)."""
    offered = offered_types(ec2, spec)
    problems = [type_problem(ec2, spec, t) for t in spec.instance_types if t not in offered]
    result: dict[str, str] = {}
    if offered:
        with ec2.errors(f"spot fleet {spec.name}: describing instance types"):
            answer = ec2.client.describe_instance_types(InstanceTypes=sorted(offered))
        for info in answer["InstanceTypes"]:
            arch = plan.arch_of(list(info.get("ProcessorInfo", {}).get("SupportedArchitectures", [])))
            instance_type = info["InstanceType"]
            if arch is None:
                index = spec.instance_types.index(instance_type)
                problems.append(f"spot_fleets.{spec.name}.instance_types[{index}]: {instance_type}: "
                                "neither arm64 nor x86_64")
            else:
                result[instance_type] = arch
    if problems:
        raise InputError(f"{spec.types_where}: {'; '.join(problems)} {ec2.note}")
    return result


def require_amis(spec: SpotFleetSpec, type_arch: dict[str, str]) -> None:
    """Every architecture among the declared types needs an AMI (``up`` only: the others launch nothing)."""
    for arch in sorted(set(type_arch.values())):
        if arch not in spec.amis:
            types = ", ".join(t for t in spec.instance_types if type_arch[t] == arch)
            raise InputError(f"{spec.where}: spot_fleets.{spec.name}.ami: no {arch} AMI for {types}")
