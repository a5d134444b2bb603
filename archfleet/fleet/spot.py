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
        user_data: true                        # hosts join by themselves (archfleet/spot/user_data.py); default false
        instance_profile: archfleet-ci         # IAM instance profile the hosts get (reads the SSM prefix, ECR pulls)
        ssm_prefix: /archfleet/ci-arm          # where `spot up` keeps the hosts' secrets; default /archfleet/<name>
        converge: pull                         # push (default): sync converges them over SSH; pull: they do
        pull_interval: 60                      # pull: seconds between the hosts' reads of release/current

Only the fleet file is read here, with the shapes of what it names checked offline (an instance type is
FAMILY.SIZE, ids are ``ami-``/``sg-``/``subnet-`` + 8 or 17 hex digits, an AMI owner is a 12-digit account id
kept as the text written, or self/amazon/aws-marketplace); what EC2 knows (does the type exist, which
architecture is it, does the AMI exist) is checked by ``archfleet spot`` against the endpoint, with errors naming
this file and line.
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
# An EC2 instance type: family (letters and digits, with a generation digit; `u-6tb1`, `mac2-m2pro`), a dot, a size.
INSTANCE_TYPE_PATTERN = re.compile(
    r"^(?=[a-z0-9-]*\d)[a-z][a-z0-9]*(?:-[a-z0-9]+)*"
    r"\.(?:nano|micro|small|medium|large|xlarge|\d{1,3}xlarge|metal(?:-\d{1,3}xl)?)$")
SECURITY_GROUP_PATTERN = re.compile(r"^sg-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
SUBNET_PATTERN = re.compile(r"^subnet-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
ACCOUNT_PATTERN = re.compile(r"^\d{12}$")
OWNER_ALIASES = ("self", "amazon", "aws-marketplace", "aws-backup-vault")
SSM_PARAMETER_PATTERN = re.compile(r"^/?[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*$")
INSTANCE_PROFILE_PATTERN = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,128}$")
KEY_PAIR_PATTERN = re.compile(r"^[\x20-\x7e]{1,255}$")
MAX_TARGET_CAPACITY = 1000
CONVERGE_MODES = ("push", "pull")  # push: `archfleet sync` converges the hosts over SSH; pull: their agent does
DEFAULT_PULL_INTERVAL = 60
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
    user_data: bool = False  # the launch templates carry the boot script that makes a host join by itself
    instance_profile: str | None = None  # IAM instance profile name (the boot script's SSM/ECR reads)
    ssm_prefix: str = ""  # SecureString parameters of the boot script's secrets; "" -> /archfleet/<name>
    converge: str = "push"  # pull: the instances converge themselves to release/current (archfleet/spot/pull_mode.py)
    pull_interval: int = DEFAULT_PULL_INTERVAL  # pull: seconds between the agent's reads of release/current
    where: str = ""  # file:line of the fleet's entry
    types_where: str = ""  # file:line of instance_types

    @property
    def pulls(self) -> bool:
        """Its instances converge themselves (an agent on a timer), not over SSH from the controller."""
        return self.converge == "pull"

    @property
    def parameter_prefix(self) -> str:
        return self.ssm_prefix or f"/archfleet/{self.name}"

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
        if not SSM_PARAMETER_PATTERN.fullmatch(ssm):
            source.fail("ssm", f"{ssm!r} is not an SSM parameter name (/path/to/parameter)")
        return AmiSource(ssm_parameter=ssm, where=node.where)
    assert filter_map is not None
    name = filter_map.string("name")
    owner = filter_map.string("owner", None)  # the text written: 012345670123 stays itself (not YAML 1.1 octal)
    if owner is not None and not ACCOUNT_PATTERN.fullmatch(owner) and owner not in OWNER_ALIASES:
        filter_map.fail("owner", f"expected a 12-digit account id or one of {', '.join(OWNER_ALIASES)}, "
                                 f"got {owner!r}")
    filter_map.done()
    return AmiSource(name_filter=name, owner=owner, where=node.where)


def _ids(entry: Mapping, key: str, pattern: re.Pattern[str], what: str) -> list[str]:
    values: list[str] = entry.strings(key, [])
    node = entry.items.get(key)
    for index, value in enumerate(values):
        if not pattern.fullmatch(value):
            assert node is not None
            item = node.value[index] if isinstance(node.value, list) else node
            item.fail(f"{value!r} is not {what}")
    return values


def parse_fleet(name: str, node: Node) -> SpotFleetSpec:
    if not NAME_PATTERN.fullmatch(name):
        node.fail("a spot fleet's name is lowercase letters, digits and dashes (it names tags and templates)")
    entry = Mapping(node)
    region = entry.string("region", None)
    if region is not None and not REGION_PATTERN.fullmatch(region):
        entry.fail("region", f"{region!r} is not an AWS region name (like eu-west-1)")
    capacity = entry.integer("target_capacity", minimum=0, maximum=MAX_TARGET_CAPACITY)
    types_node = entry.required("instance_types")
    types = entry.strings("instance_types")
    if not types:
        types_node.fail("list at least one instance type")
    if len(set(types)) != len(types):
        types_node.fail("an instance type is listed twice")
    for index, instance_type in enumerate(types):
        if not INSTANCE_TYPE_PATTERN.fullmatch(instance_type):
            item = types_node.value[index] if isinstance(types_node.value, list) else types_node
            item.fail(f"{instance_type!r} is not an EC2 instance type (FAMILY.SIZE, like t4g.small)")
    ami_section = entry.mapping("ami", required=True)
    assert ami_section is not None
    amis = {}
    for arch, ami_node in ami_section.entries():
        if arch not in ARCHITECTURES:
            ami_node.fail(f"unknown architecture (expected one of {', '.join(ARCHITECTURES)})")
        amis[arch] = _ami(ami_node)
    key_pair = entry.string("key_pair", None)
    if key_pair is not None and not KEY_PAIR_PATTERN.fullmatch(key_pair):
        entry.fail("key_pair", "a key pair name is 1 to 255 printable ASCII characters")
    security_groups = _ids(entry, "security_groups", SECURITY_GROUP_PATTERN, "a security group id (sg-...)")
    subnets = _ids(entry, "subnets", SUBNET_PATTERN, "a subnet id (subnet-...)")
    tags = entry.string_map("tags")
    for key in tags:
        if key.startswith(TAG_PREFIX) or key.startswith("aws:"):
            entry.fail("tags", f"tag {key!r}: the prefixes {TAG_PREFIX!r} and 'aws:' are reserved")
    max_price = entry.number("max_price", None)
    if max_price is not None and max_price <= 0:
        entry.fail("max_price", "must be a positive price in USD per instance-hour")
    role = entry.string("role", None)
    user_data = bool(entry.boolean("user_data", False))
    instance_profile = entry.string("instance_profile", None)
    if instance_profile is not None and not INSTANCE_PROFILE_PATTERN.fullmatch(instance_profile):
        entry.fail("instance_profile", f"{instance_profile!r} is not an IAM instance profile name")
    ssm_prefix = entry.string("ssm_prefix", None)
    if ssm_prefix is not None and not (ssm_prefix.startswith("/") and SSM_PARAMETER_PATTERN.fullmatch(ssm_prefix)):
        entry.fail("ssm_prefix", f"{ssm_prefix!r} is not an SSM parameter path (/path/to/prefix)")
    converge = entry.string("converge", "push")
    if converge not in CONVERGE_MODES:
        entry.fail("converge", f"expected push or pull, got {converge!r}")
    if converge == "pull" and not user_data:
        entry.fail("converge", "pull needs `user_data: true` (the boot script installs the agent)")
    pull_interval = entry.integer("pull_interval", DEFAULT_PULL_INTERVAL, minimum=5, maximum=86400)
    if "pull_interval" in entry.items and converge != "pull":
        entry.fail("pull_interval", "only a fleet with `converge: pull` has an agent to time")
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
        user_data=user_data,
        instance_profile=instance_profile,
        ssm_prefix=(ssm_prefix or "").rstrip("/"),
        converge=converge,
        pull_interval=int(pull_interval),
        where=node.where,
        types_where=types_node.where,
    )


def parse_spot_fleets(section: Mapping | None, fleet: Fleet) -> dict[str, SpotFleetSpec]:
    if section is None:
        return {}
    return {name: parse_fleet(name, node) for name, node in section.entries()}
