"""The ``spot_fleets`` section of the fleet file: named EC2 spot fleets.

    spot_fleets:
      ci-arm:
        region: eu-west-1                      # optional: else AWS_REGION / AWS_DEFAULT_REGION / the profile's
        target_capacity: 2
        instance_types: [t4g.small, t4g.medium, t3.small]   # preference order: arm64 Graviton first
        ami:
          arm64: ami-0123456789abcdef0                       # an id,
          amd64: {ssm: /aws/service/debian/release/12/latest/amd64}   # an SSM parameter,
          # or {filter: {name: "debian-12-arm64-*", owner: "136693071363"}} (the newest match)
        key_pair: archfleet
        security_groups: [sg-0123456789abcdef0]
        subnets: [subnet-0123456789abcdef0]
        tags: {team: infra}
        max_price: 0.02                        # optional: USD per instance-hour
        role: ci-runner                        # what the hosts play (tag archfleet:role)

Only the fleet file is read here; what EC2 knows (does the type exist, which architecture is it, does the
AMI exist) is checked by ``archfleet spot`` against the endpoint, with errors naming this file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from archfleet.schema import Mapping, Node

if TYPE_CHECKING:
    from archfleet.fleet import Fleet

ARCHITECTURES = ("arm64", "amd64")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
AMI_PATTERN = re.compile(r"^ami-[0-9a-f]{8,17}$")
TAG_PREFIX = "archfleet:"


@dataclass(frozen=True)
class AmiSource:
    """Where a launch template's image comes from: exactly one of an id, an SSM parameter, or a filter."""

    image_id: str | None = None
    ssm_parameter: str | None = None
    name_filter: str | None = None
    owner: str | None = None
    where: str = ""  # file:line, for errors found against EC2

    def describe(self) -> str:
        if self.image_id:
            return self.image_id
        if self.ssm_parameter:
            return f"ssm:{self.ssm_parameter}"
        return f"filter name={self.name_filter}" + (f" owner={self.owner}" if self.owner else "")


@dataclass(frozen=True)
class SpotFleetSpec:
    name: str
    target_capacity: int
    instance_types: tuple[str, ...]
    amis: dict[str, AmiSource]
    region: str | None = None
    key_pair: str | None = None
    security_groups: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    max_price: float | None = None
    role: str | None = None
    where: str = ""  # file:line of the fleet's entry
    types_where: str = ""  # file:line of instance_types

    def instance_tags(self) -> dict[str, str]:
        """The tags on everything the fleet creates: the user's, then archfleet's (which win)."""
        tags = dict(self.tags)
        tags[f"{TAG_PREFIX}fleet"] = self.name
        if self.role:
            tags[f"{TAG_PREFIX}role"] = self.role
        return tags


def _ami(node: Node) -> AmiSource:
    if isinstance(node.value, str):
        if not AMI_PATTERN.fullmatch(node.value):
            node.fail("expected an AMI id (ami-...), or a mapping with `ssm` or `filter`")
        return AmiSource(image_id=node.value, where=node.where)
    source = Mapping(node)
    ssm = source.string("ssm", None)
    filter_map = source.mapping("filter")
    source.done()
    if (ssm is None) == (filter_map is None):
        node.fail("expected exactly one of `ssm` (a parameter name) or `filter` (name, owner)")
    if ssm is not None:
        return AmiSource(ssm_parameter=ssm, where=node.where)
    assert filter_map is not None
    name = filter_map.string("name")
    owner_node = filter_map.get("owner")
    owner = None
    if owner_node is not None and owner_node.value is not None:
        # An account id may be written as a number.
        if not isinstance(owner_node.value, str | int) or isinstance(owner_node.value, bool):
            owner_node.fail(f"expected an account id or alias, got {owner_node.kind}")
        owner = str(owner_node.value)
    filter_map.done()
    return AmiSource(name_filter=name, owner=owner, where=node.where)


def parse_fleet(name: str, node: Node) -> SpotFleetSpec:
    if not NAME_PATTERN.fullmatch(name):
        node.fail("a spot fleet's name is lowercase letters, digits and dashes (it names tags and templates)")
    entry = Mapping(node)
    region = entry.string("region", None)
    capacity = entry.integer("target_capacity")
    if capacity < 0:
        entry.fail("target_capacity", "must be 0 or more")
    types_node = entry.required("instance_types")
    types = entry.strings("instance_types")
    if not types:
        types_node.fail("list at least one instance type")
    if len(set(types)) != len(types):
        types_node.fail("an instance type is listed twice")
    ami_section = entry.mapping("ami", required=True)
    assert ami_section is not None
    amis = {}
    for arch, ami_node in ami_section.entries():
        if arch not in ARCHITECTURES:
            ami_node.fail(f"unknown architecture (expected one of {', '.join(ARCHITECTURES)})")
        amis[arch] = _ami(ami_node)
    key_pair = entry.string("key_pair", None)
    security_groups = entry.strings("security_groups", [])
    subnets = entry.strings("subnets", [])
    tags = entry.string_map("tags")
    for key in tags:
        if key.startswith(TAG_PREFIX) or key.startswith("aws:"):
            entry.fail("tags", f"tag {key!r}: the prefixes {TAG_PREFIX!r} and 'aws:' are reserved")
    max_price = entry.number("max_price", None)
    if max_price is not None and max_price <= 0:
        entry.fail("max_price", "must be a positive price in USD per instance-hour")
    role = entry.string("role", None)
    entry.done()
    return SpotFleetSpec(
        name=name,
        target_capacity=capacity,
        instance_types=tuple(types),
        amis=amis,
        region=region,
        key_pair=key_pair,
        security_groups=tuple(security_groups),
        subnets=tuple(subnets),
        tags=tags,
        max_price=float(max_price) if max_price is not None else None,
        role=role,
        where=node.where,
        types_where=types_node.where,
    )


def parse_spot_fleets(section: Mapping | None, fleet: Fleet) -> dict[str, SpotFleetSpec]:
    if section is None:
        return {}
    return {name: parse_fleet(name, node) for name, node in section.entries()}
