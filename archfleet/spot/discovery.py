"""A fleet's instances, found by the ``archfleet:fleet`` tag, as plain rows (status, up, ``inventories/ec2.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archfleet.spot.connection import Ec2, ec2_errors, tag_filter
from archfleet.spot.plan import EC2_ARCHITECTURES, FLEET_TAG, LIVE_STATES, tag_dict

ADDRESS_KINDS = ("public_ip", "private_ip", "public_dns", "private_dns")


@dataclass(frozen=True)
class InstanceRow:
    instance_id: str
    instance_type: str
    arch: str
    availability_zone: str
    lifecycle: str  # spot | on_demand
    state: str
    public_ip: str | None
    private_ip: str | None
    public_dns: str | None
    private_dns: str | None
    tags: dict[str, str]

    @property
    def role(self) -> str | None:
        return self.tags.get("archfleet:role")

    def address(self, kind: str = "auto") -> str | None:
        """``public_ip``, ``private_ip``, ``public_dns``, ``private_dns``, ``tag:NAME`` or ``auto``
        (public IP, else private IP)."""
        if kind == "auto":
            return self.public_ip or self.private_ip
        if kind.startswith("tag:"):
            return self.tags.get(kind[4:]) or None
        if kind not in ADDRESS_KINDS:
            raise ValueError(kind)
        return getattr(self, kind) or None


def instance_row(instance: Any) -> InstanceRow:
    return InstanceRow(
        instance_id=instance["InstanceId"],
        instance_type=instance["InstanceType"],
        arch=EC2_ARCHITECTURES.get(instance.get("Architecture", ""), instance.get("Architecture", "unknown")),
        availability_zone=instance.get("Placement", {}).get("AvailabilityZone", ""),
        lifecycle="spot" if instance.get("InstanceLifecycle") == "spot" else "on_demand",
        state=instance["State"]["Name"],
        public_ip=instance.get("PublicIpAddress") or None,
        private_ip=instance.get("PrivateIpAddress") or None,
        public_dns=instance.get("PublicDnsName") or None,
        private_dns=instance.get("PrivateDnsName") or None,
        tags=tag_dict(instance.get("Tags")),
    )


def tagged_instances(ec2: Ec2, fleet: str, states: tuple[str, ...] = LIVE_STATES) -> list[InstanceRow]:
    """Instances tagged with the fleet's name, in the given states, sorted by id."""
    rows: list[InstanceRow] = []
    with ec2_errors(f"spot fleet {fleet}: listing instances"):
        paginator = ec2.client.get_paginator("describe_instances")
        filters: Any = [*tag_filter(FLEET_TAG, fleet), {"Name": "instance-state-name", "Values": list(states)}]
        for page in paginator.paginate(Filters=filters):
            for reservation in page["Reservations"]:
                rows.extend(instance_row(i) for i in reservation["Instances"])
    return sorted(rows, key=lambda r: r.instance_id)


def format_rows(rows: list[InstanceRow], address: str = "auto") -> list[str]:
    lines = [f"{'INSTANCE':<21} {'TYPE':<11} {'ARCH':<6} {'AZ':<12} {'LIFECYCLE':<10} {'STATE':<9} ADDRESS"]
    for r in rows:
        lines.append(
            f"{r.instance_id:<21} {r.instance_type:<11} {r.arch:<6} {r.availability_zone:<12} {r.lifecycle:<10} "
            f"{r.state:<9} {r.address(address) or '-'}"
        )
    return lines
