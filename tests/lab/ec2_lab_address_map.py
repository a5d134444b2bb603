"""A TEST DEVICE: lab hosts play the EC2 instances of a spot fleet on the moto test server.

moto gives its instances made-up private and public IPs that nothing answers at. The map picks, for each running
instance of the fleet, a lab host of the instance's architecture (each lab host plays one instance) and writes the
lab host's address into a tag of the instance, ``archfleet-test:lab-address``, through the public EC2 API
(CreateTags). ``inventories/ec2.py`` then reads it with ``ARCHFLEET_EC2_ADDRESS=tag:archfleet-test:lab-address``,
the address mode it has for addresses kept in a tag (as behind a bastion). archfleet itself only ever talks to the
EC2 API; all the remapping is here, on the test's side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archfleet.lab.state import LabHost

ADDRESS_TAG = "archfleet-test:lab-address"
ADDRESS_MODE = f"tag:{ADDRESS_TAG}"
EC2_ARCHES = {"arm64": "arm64", "x86_64": "amd64"}


@dataclass(frozen=True)
class PlayedInstance:
    instance_id: str
    arch: str  # amd64 | arm64
    instance_type: str
    host: LabHost  # the lab host that plays it


def map_fleet_to_lab(ec2: Any, fleet: str, lab_hosts: list[LabHost]) -> list[PlayedInstance]:
    """Tag every running instance tagged ``archfleet:fleet=FLEET`` with the address of a lab host of its
    architecture (in order of instance id and host name); fails when the lab has too few hosts of an arch."""
    filters = [{"Name": "tag:archfleet:fleet", "Values": [fleet]}, {"Name": "instance-state-name",
                                                                   "Values": ["running"]}]
    instances = sorted((i for r in ec2.describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]),
                       key=lambda i: i["InstanceId"])
    free = {arch: sorted((h for h in lab_hosts if h.arch == arch), key=lambda h: h.name) for arch in ("amd64", "arm64")}
    played = []
    for instance in instances:
        arch = EC2_ARCHES[instance["Architecture"]]
        if not free[arch]:
            raise AssertionError(f"no lab host left to play {instance['InstanceId']} ({arch})")
        host = free[arch].pop(0)
        ec2.create_tags(Resources=[instance["InstanceId"]], Tags=[{"Key": ADDRESS_TAG, "Value": host.address}])
        played.append(PlayedInstance(instance["InstanceId"], arch, instance["InstanceType"], host))
    return played
