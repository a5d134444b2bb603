"""The fleet file's `spot_fleets:` section: parsed into SpotFleetSpec, errors name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from archfleet.fleet import load_fleet
from archfleet.fleet.spot import AmiSource
from archfleet.schema import SchemaError

GOOD = """\
registry: {lab: true}
spot_fleets:
  ci-arm:
    region: eu-west-1
    target_capacity: 2
    instance_types: [t4g.small, t4g.medium, t3.small]
    ami:
      arm64: ami-0123456789abcdef0
      amd64: {ssm: /aws/service/debian/release/12/latest/amd64}
    key_pair: archfleet
    security_groups: sg-0123456789abcdef0
    subnets: [subnet-0123456789abcdef0, subnet-0123456789abcdef1]
    tags: {team: infra}
    max_price: 0.02
    role: ci-runner
  x86:
    target_capacity: 0
    instance_types: t3.small
    ami:
      amd64: {filter: {name: "debian-12-amd64-*", owner: 136693071363}}
"""


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return load_fleet(path)


def test_a_full_fleet_and_a_minimal_one(tmp_path: Path) -> None:
    fleets = load(tmp_path, GOOD).spot_fleets
    ci = fleets["ci-arm"]
    assert ci.instance_types == ("t4g.small", "t4g.medium", "t3.small")
    assert ci.amis["arm64"].image_id == "ami-0123456789abcdef0"
    assert ci.amis["amd64"].ssm_parameter == "/aws/service/debian/release/12/latest/amd64"
    assert ci.security_groups == ("sg-0123456789abcdef0",) and len(ci.subnets) == 2
    assert ci.max_price == 0.02 and ci.region == "eu-west-1"
    assert ci.instance_tags() == {"team": "infra", "archfleet:fleet": "ci-arm", "archfleet:role": "ci-runner"}
    assert ci.where.endswith("fleet.yaml:3") and ci.types_where.endswith("fleet.yaml:6")
    x86 = fleets["x86"]
    assert x86.target_capacity == 0 and x86.region is None and x86.key_pair is None
    assert x86.amis["amd64"] == AmiSource(name_filter="debian-12-amd64-*", owner="136693071363",
                                          where=x86.amis["amd64"].where)


@pytest.mark.parametrize(("change", "message"), [
    (("target_capacity: 2", "target_capacity: -1"), ":5: spot_fleets.ci-arm.target_capacity: must be 0 or more"),
    (("target_capacity: 2", "target_capacity: two"), ":5: spot_fleets.ci-arm.target_capacity: expected an integer"),
    (("arm64: ami-0123456789abcdef0", "arm64: debian"), ":8: spot_fleets.ci-arm.ami.arm64: expected an AMI id"),
    (("arm64: ami-0123456789abcdef0", "riscv64: ami-0123456789abcdef0"), ":8: spot_fleets.ci-arm.ami.riscv64: "
                                                                        "unknown architecture"),
    (("{ssm: /aws/service/debian/release/12/latest/amd64}", "{ssm: /x, filter: {name: y}}"),
     ":9: spot_fleets.ci-arm.ami.amd64: expected exactly one of"),
    (("tags: {team: infra}", "tags: {'archfleet:fleet': other}"),
     ":13: spot_fleets.ci-arm.tags: tag 'archfleet:fleet'"),
    (("max_price: 0.02", "max_price: 0"), ":14: spot_fleets.ci-arm.max_price: must be a positive price"),
    (("role: ci-runner", "roles: ci-runner"), ":15: spot_fleets.ci-arm.roles: unknown key"),
    (("  ci-arm:", "  CI_arm:"), ":3: spot_fleets.CI_arm: a spot fleet's name is lowercase"),
    (("instance_types: [t4g.small, t4g.medium, t3.small]", "instance_types: [t4g.small, t4g.small]"),
     ":6: spot_fleets.ci-arm.instance_types: an instance type is listed twice"),
])
def test_errors_name_file_line_and_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(SchemaError) as error:
        load(tmp_path, GOOD.replace(*change))
    assert message in str(error.value)
    assert str(error.value).startswith(str(tmp_path / "fleet.yaml"))


def test_the_commented_example_in_fleet_yaml_parses_when_uncommented(tmp_path: Path) -> None:
    """The reference section at the end of fleet.yaml is kept valid."""
    text = (Path(__file__).parents[2] / "fleet.yaml").read_text()
    section = text[text.index("\n# spot_fleets:\n") + 1: text.index("# (end of the spot_fleets example)")]
    body = "\n".join(line[2:] for line in section.splitlines())
    fleets = load(tmp_path, "registry: {lab: true}\n" + body + "\n").spot_fleets
    assert "ci-arm" in fleets and fleets["ci-arm"].instance_types[0].startswith("t4g")
