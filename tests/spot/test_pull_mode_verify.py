"""`archfleet verify` on a pull-mode spot fleet (issue 31), against the EC2/SSM test server (moto): its instances,
listed by inventories/ec2.py, are not reached over SSH (the read gathers proof from no host) but judged from their
tags, one row each: ok when it runs the fleet's release/current and its last converge is ok; FAIL with the reason
otherwise (another release, a failed converge, none recorded yet)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from archfleet.services.proof import FAIL, OK
from archfleet.spot.discovery import InstanceRow
from archfleet.spot.pull_mode import PULL_ROW, judge_pull_instance
from archfleet.spot.user_data import RELEASE_TAG, release_pointer
from archfleet.tasks.pull_agent_commands import CONVERGE_TAG
from tests.spot.conftest import PROJECT, REGION, Endpoint

NAME = "pull-verify"
PREFIX = f"/archfleet/{NAME}"
CURRENT, OLD = "20261208T040000Z-aaaa", "20261208T030000Z-bbbb"


@pytest.fixture
def pull_fleet(endpoint: Endpoint, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """The fleet file, and two running instances of its pull fleet (current and ok; an old release, its last
    converge failed), release/current naming CURRENT."""
    ssm = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                region_name=REGION).client("ssm", endpoint_url=endpoint.url)
    ssm.put_parameter(Name=release_pointer(PREFIX), Value=CURRENT, Type="String", Overwrite=True)
    image = endpoint.ec2.describe_images()["Images"][0]["ImageId"]
    tags = {
        "current": {RELEASE_TAG: CURRENT, CONVERGE_TAG: f"{CURRENT} 2026-12-08T04:00:10Z ok"},
        "failed": {RELEASE_TAG: OLD,
                   CONVERGE_TAG: f"{CURRENT} 2026-12-08T04:00:12Z failed: v2ray: health check timed out after 30s"},
    }
    instances = {}
    for which, extra in tags.items():
        made = endpoint.ec2.run_instances(ImageId=image, InstanceType="t3.small", MinCount=1, MaxCount=1,
                                          SubnetId=endpoint.subnets[0], TagSpecifications=[{
                                              "ResourceType": "instance", "Tags": [
                                                  {"Key": "archfleet:fleet", "Value": NAME},
                                                  *({"Key": k, "Value": v} for k, v in extra.items())]}])
        instances[which] = made["Instances"][0]["InstanceId"]
    path = tmp_path / "fleet.yaml"
    path.write_text(f"""\
registry: {{lab: true}}
inventory: {PROJECT / "inventories/ec2.py"}
services: {{}}
spot_fleets:
  {NAME}:
    target_capacity: 2
    instance_types: [t3.small]
    ami: {{amd64: {image}}}
    subnets: [{endpoint.subnets[0]}]
    user_data: true
    converge: pull
""")
    try:
        yield path, instances
    finally:
        endpoint.ec2.terminate_instances(InstanceIds=list(instances.values()))
        ssm.delete_parameter(Name=release_pointer(PREFIX))


def test_verify_judges_pull_mode_instances_from_their_tags_without_ssh(
        endpoint: Endpoint, pull_fleet: tuple[Path, dict[str, str]]) -> None:
    path, instances = pull_fleet
    result = endpoint.archfleet("verify", "-f", str(path), "--json", timeout=120,
                                env={**endpoint.env, "ARCHFLEET_EC2_FLEET": NAME})
    assert result.returncode == 1, result.stderr  # one instance fails
    # No SSH: the read gathers proof from no host; both instances are judged from their tags instead.
    assert f"verify: spot fleet {NAME}: 2 pull-mode host(s) judged from their tags" in result.stderr, result.stderr
    assert "verify: gathering proof from 0 host(s)" in result.stderr, result.stderr
    document = json.loads(result.stdout)
    rows = {row["host"]: row for row in document["rows"]}
    assert document["ok"] is False and sorted(rows) == sorted(instances.values()), document
    ok, failed = rows[instances["current"]], rows[instances["failed"]]
    assert (ok["service"], ok["verdict"], ok["reason"], ok["host_platform"]) == (PULL_ROW, OK, "", "linux/amd64")
    assert (failed["service"], failed["verdict"]) == (PULL_ROW, FAIL)
    assert failed["reason"] == (
        f"runs release {OLD}, not spot fleet {NAME}'s current {CURRENT}; last converge failed: v2ray: health check "
        f"timed out after 30s (release {CURRENT}, 2026-12-08T04:00:12Z)"), failed
    assert "\n" not in failed["reason"]
    assert "unreachable" not in result.stdout


def instance(tags: dict[str, str], state: str = "running") -> InstanceRow:
    return InstanceRow("i-0abc", "t4g.small", "arm64", "eu-west-1a", "spot", state, None, "10.0.0.5", None, None,
                       tags)


@pytest.mark.parametrize(("row", "current", "reason"), [
    (instance({RELEASE_TAG: CURRENT}), CURRENT, "no converge recorded yet"),
    (instance({RELEASE_TAG: CURRENT, CONVERGE_TAG: f"{CURRENT} T ok"}), None,
     f"spot fleet {NAME} has no release published: `archfleet spot up {NAME}` publishes one"),
    (instance({CONVERGE_TAG: f"{CURRENT} T ok"}), CURRENT,
     f"runs no recorded release, not spot fleet {NAME}'s current {CURRENT}"),
    (instance({RELEASE_TAG: CURRENT, CONVERGE_TAG: "garbage\nline"}), CURRENT,
     "unreadable converge record 'garbage line'"),
    (instance({RELEASE_TAG: CURRENT, CONVERGE_TAG: f"{CURRENT} T ok"}, "stopped"), CURRENT, "the instance is stopped"),
    (None, CURRENT, f"not a live instance of spot fleet {NAME} (gone since the inventory was read?)"),
])
def test_a_pull_mode_instance_fails_with_one_line_saying_why(row: InstanceRow | None, current: str | None,
                                                              reason: str) -> None:
    judged = judge_pull_instance("i-0abc", row, NAME, current)
    assert (judged.verdict, judged.reason) == (FAIL, reason)


def test_a_pull_mode_instance_on_the_current_release_whose_last_converge_is_ok_is_ok() -> None:
    judged = judge_pull_instance("i-0abc", instance({RELEASE_TAG: CURRENT, CONVERGE_TAG: f"{CURRENT} T ok"}), NAME,
                                 CURRENT)
    assert (judged.verdict, judged.reason, judged.host_platform, judged.state) == (OK, "", "linux/arm64", "running")
