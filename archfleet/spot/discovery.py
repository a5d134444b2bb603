"""A fleet's instances, found by the ``archfleet:fleet`` tag, as plain rows (status, up, ``inventories/ec2.py``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from archfleet.spot.connection import AwsClient, tag_filter
from archfleet.spot.plan import EC2_ARCHITECTURES, FLEET_TAG, LIVE_STATES, tag_dict
from archfleet.spot.user_data import RELEASE_TAG
from archfleet.ssh import is_host_address
from archfleet.table import format_table

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


def tagged_instances(ec2: AwsClient, fleet: str, states: tuple[str, ...] = LIVE_STATES) -> list[InstanceRow]:
    """Instances tagged with the fleet's name, in the given states, sorted by id."""
    rows: list[InstanceRow] = []
    with ec2.errors(f"spot fleet {fleet}: listing instances"):
        paginator = ec2.client.get_paginator("describe_instances")
        filters: Any = [*tag_filter(FLEET_TAG, fleet), {"Name": "instance-state-name", "Values": list(states)}]
        for page in paginator.paginate(Filters=filters):
            for reservation in page["Reservations"]:
                rows.extend(instance_row(i) for i in reservation["Instances"])
    return sorted(rows, key=lambda r: r.instance_id)


def format_rows(rows: list[InstanceRow], address: str = "auto", current_release: str | None = None) -> list[str]:
    """The instances as a table; with ``current_release`` (a fleet with user-data), the release each booted (its
    ``archfleet:release`` tag) and whether that is the current one."""
    headings = ("INSTANCE", "TYPE", "ARCH", "AZ", "LIFECYCLE", "STATE", "ADDRESS")
    lines = [(r.instance_id, r.instance_type, r.arch, r.availability_zone, r.lifecycle, r.state,
              r.address(address) or "-") for r in rows]
    if current_release is None:
        return format_table(headings, lines).splitlines()
    booted = [r.tags.get(RELEASE_TAG) for r in rows]
    marks = ["-" if b is None else "current" if b == current_release else "old" for b in booted]
    return format_table((*headings, "BOOTED RELEASE", ""), [
        (*line, b or "-", mark) for line, b, mark in zip(lines, booted, marks, strict=True)]).splitlines()


# --- pyinfra inventory (inventories/ec2.py) ---------------------------------------------------------------------

HostEntry = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class InventorySettings:
    """``inventories/ec2.py`` is configured by environment variables (pyinfra passes no arguments to inventories)."""

    fleet: str
    region: str | None = None
    address: str = "auto"  # auto | public_ip | private_ip | public_dns | private_dns | tag:NAME
    ssh_user: str | None = None
    ssh_key: str | None = None
    metadata_url: str | None = None  # for the spot interruption watcher; default http://169.254.169.254

    @classmethod
    def from_environment(cls, environ: dict[str, str]) -> InventorySettings:
        from archfleet.errors import InputError

        fleet = environ.get("ARCHFLEET_EC2_FLEET", "").strip()
        if not fleet:
            raise InputError("inventories/ec2.py: set ARCHFLEET_EC2_FLEET to the spot fleet's name")
        address = environ.get("ARCHFLEET_EC2_ADDRESS", "auto").strip() or "auto"
        if address not in ("auto", *ADDRESS_KINDS) and not (address.startswith("tag:") and len(address) > 4):
            raise InputError(f"ARCHFLEET_EC2_ADDRESS={address!r}: expected auto, "
                             f"{', '.join(ADDRESS_KINDS)} or tag:NAME")
        return cls(
            fleet=fleet, region=environ.get("ARCHFLEET_EC2_REGION") or None, address=address,
            ssh_user=environ.get("ARCHFLEET_EC2_SSH_USER") or None,
            ssh_key=environ.get("ARCHFLEET_EC2_SSH_KEY") or None,
            metadata_url=environ.get("ARCHFLEET_EC2_METADATA_URL") or None,
        )


def host_data(row: InstanceRow, settings: InventorySettings, address: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ssh_hostname": address,
        "ec2_instance_id": row.instance_id,
        "ec2_region": settings.region,
        "ec2_instance_type": row.instance_type,
        "ec2_availability_zone": row.availability_zone,
        "ec2_lifecycle": row.lifecycle,
        "ec2_arch": row.arch,
        "ec2_fleet": settings.fleet,
        "lifecycle": row.lifecycle,
        "spot": row.lifecycle == "spot",
    }
    if row.role:
        data["role"] = row.role
    if settings.ssh_user:
        data["ssh_user"] = settings.ssh_user
    if settings.ssh_key:
        data["ssh_key"] = settings.ssh_key
    if settings.metadata_url and row.lifecycle == "spot":
        data["spot_metadata_url"] = settings.metadata_url
    return data


def inventory_groups(rows: list[InstanceRow], settings: InventorySettings) -> tuple[dict[str, list[HostEntry]],
                                                                                      list[str]]:
    """Running instances as pyinfra groups: by architecture (arm64, amd64), lifecycle (spot, on_demand) and role.

    Hosts are named by instance id; instances without the chosen address, or whose address is not a host name or
    IP address (``archfleet.ssh.is_host_address``: a tag's value is anyone's who may tag instances), are left out
    (and named in the second return value, for a warning).
    """
    groups: dict[str, list[HostEntry]] = {"arm64": [], "amd64": [], "spot": [], "on_demand": []}
    skipped = []
    for row in rows:
        if row.state != "running":
            continue
        address = row.address(settings.address)
        if not address:
            skipped.append(f"{row.instance_id} has no {settings.address} address")
            continue
        if not is_host_address(address):  # a tag (or anything the API says) never reaches ssh unchecked
            skipped.append(f"{row.instance_id}'s {settings.address} {address!r} is not a host name or IP address")
            continue
        entry = (row.instance_id, host_data(row, settings, address))
        for group in (row.arch, row.lifecycle, row.role):
            if group:
                groups.setdefault(group, []).append(entry)
    return groups, skipped


def ec2_inventory(environ: dict[str, str]) -> dict[str, list[HostEntry]]:
    import sys

    from archfleet.spot.connection import connect

    settings = InventorySettings.from_environment(environ)
    ec2 = connect(settings.region)
    settings = replace(settings, region=ec2.region)  # the hosts' ec2_region: where their console output is read
    rows = tagged_instances(ec2, settings.fleet, ("running",))
    groups, skipped = inventory_groups(rows, settings)
    for line in skipped:
        print(f"archfleet: inventories/ec2.py: {line}, left out", file=sys.stderr)
    return groups
