"""`archfleet spot` when the input or the endpoint is wrong, against moto_server over HTTP (see conftest.py):
unknown instance types in every command, a `down` that loses calls part-way (and `status --json` of what it
left), API failures and unreachable endpoints (exit 1, naming the endpoint), the SSM endpoint rule."""

from __future__ import annotations

import json
from pathlib import Path

from tests.spot.conftest import Endpoint, free_port
from tests.spot.test_fleet_on_moto import ARM_SSM, NOTHING_TAGGED, X86_FILTER, one_error_line, tagged, write_fleet


def test_an_unknown_or_unoffered_instance_type_is_bad_input_in_every_command(tmp_path: Path,
                                                                             endpoint: Endpoint) -> None:
    """Exit 2, one line naming each bad type, its index and the file's line; nothing created and (down) nothing
    removed, for the bad fleet nor for a good one the command reaches first (every selected fleet is checked
    before any is acted on): a launch template tagged with each fleet stays. moto knows p5.48xlarge but does not
    offer it in eu-west-1."""
    name, good = "typo", "a-good"  # the command takes fleets in name order: the good one first
    templates = [endpoint.ec2.create_launch_template(
        LaunchTemplateName=f"archfleet-{fleet}-arm64", LaunchTemplateData={"InstanceType": "t4g.small"},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "archfleet:fleet", "Value": fleet}]}],
    )["LaunchTemplate"]["LaunchTemplateId"] for fleet in (name, good)]
    before = {fleet: tagged(endpoint, fleet) for fleet in (name, good)}
    assert before[good]["templates"] == [f"archfleet-{good}-arm64"]
    bad = write_fleet(tmp_path, endpoint, name, 1, types="[t4g.small, t9g.small, p5.48xlarge]", extra=f"""\
  {good}:
    target_capacity: 1
    instance_types: [t4g.small]
    ami: {{arm64: {{ssm: {ARM_SSM}}}}}
""")
    try:
        for command in ("up", "status", "down", "prices"):
            result = endpoint.archfleet("spot", command, "-f", str(bad))
            assert result.returncode == 2, (command, result.stderr)
            line = one_error_line(result.stderr)
            assert f"{bad}:5: spot_fleets.{name}.instance_types[1]: t9g.small: EC2 has no such instance type; " in line
            assert f"spot_fleets.{name}.instance_types[2]: p5.48xlarge: not offered in eu-west-1" in line
            assert f"(EC2 endpoint {endpoint.url})" in line and "Traceback" not in result.stderr
            assert result.stdout == ""
            assert {fleet: tagged(endpoint, fleet) for fleet in (name, good)} == before, command
    finally:
        for template in templates:
            endpoint.ec2.delete_launch_template(LaunchTemplateId=template)


def test_down_goes_on_past_failed_calls_and_a_second_down_finishes(tmp_path: Path, failing: Endpoint) -> None:
    """The test server fails DeleteFleets once and DeleteLaunchTemplate once: `down` still terminates the
    instances, cancels the requests and deletes the other template, names what is left (exit 1, the endpoint
    named); `status --json` describes what is left (one JSON document on stdout, checked against EC2's own
    answer); the next `down` removes the rest."""
    name = "halfway"
    fleet = write_fleet(tmp_path, failing, name, 1)
    up = failing.archfleet("spot", "up", "-f", str(fleet), name)
    assert up.returncode == 0, up.stderr
    fleet_id = tagged(failing, name)["fleets"][0]
    failing.fail_calls("DeleteFleets")
    failing.fail_calls("DeleteLaunchTemplate")

    first = failing.archfleet("spot", "down", "-f", str(fleet), name)
    assert first.returncode == 1, first.stderr
    line = one_error_line(first.stderr)
    assert f"spot fleet {name}: 2 call(s) failed, left: fleet {fleet_id} (active)" in line
    assert f"(EC2 endpoint {failing.url})" in line and "run `archfleet spot down` again" in line
    assert "Traceback" not in first.stderr
    left = tagged(failing, name)
    assert left["fleets"] == [fleet_id]
    assert len(left["templates"]) == 1  # the first delete failed, the second went on
    assert f"launch template {left['templates'][0]}" in line
    assert f"{name}: left: fleet {fleet_id} (active)" in first.stdout
    assert "FAILED: spot fleet halfway: deleting fleet(s)" in first.stderr and "IncorrectState" in first.stderr
    assert "terminated 1 instance(s)" in first.stderr  # went on past the failed fleet deletion

    # What is left, as `status --json` tells it, with a stray instance tagged into the fleet (a leftover).
    image = failing.ec2.describe_images(Owners=["amazon"], Filters=[
        {"Name": "name", "Values": [X86_FILTER.split('"')[1]]}])["Images"][0]["ImageId"]
    stray = failing.ec2.run_instances(
        ImageId=image, InstanceType="t3.small", MinCount=1, MaxCount=1, SubnetId=failing.subnets[0],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "archfleet:fleet", "Value": name}]}],
    )["Instances"][0]["InstanceId"]
    status = failing.archfleet("spot", "status", "--json", "-f", str(fleet), name)
    assert status.returncode == 0, status.stderr
    [state] = json.loads(status.stdout)["spot_fleets"]
    assert (state["name"], state["region"], state["endpoint"]) == (name, "eu-west-1", failing.url)
    assert state["fleets"] == [{"id": fleet_id, "state": "active", "type": "maintain", "target_capacity": 1,
                                "running": 1}]  # the test server's maintain fleet replaced the terminated one
    assert state["leftovers"] == [{"kind": "instance", "id": stray, "detail": "running, not in the fleet"}]
    described = {i["InstanceId"]: i for r in failing.ec2.describe_instances(Filters=[
        {"Name": "tag:archfleet:fleet", "Values": [name]}, {"Name": "instance-state-name", "Values": ["running"]},
    ])["Reservations"] for i in r["Instances"]}
    assert sorted(i["id"] for i in state["instances"]) == sorted(described)
    for instance in state["instances"]:
        ec2_view = described[instance["id"]]
        assert instance == {
            "id": ec2_view["InstanceId"], "type": ec2_view["InstanceType"],
            "arch": {"arm64": "arm64", "x86_64": "amd64"}[ec2_view["Architecture"]],
            "az": ec2_view["Placement"]["AvailabilityZone"],
            "lifecycle": "spot" if ec2_view.get("InstanceLifecycle") == "spot" else "on_demand",
            "state": "running", "address": ec2_view.get("PublicIpAddress") or ec2_view["PrivateIpAddress"],
            "fleet": None if instance["id"] == stray else fleet_id,
            "release": None,  # no instance booted a release: nothing runs on the test server's instances
        }

    second = failing.archfleet("spot", "down", "-f", str(fleet), name)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == f"{name}: removed"
    assert tagged(failing, name) == NOTHING_TAGGED


def test_an_api_failure_is_exit_1_naming_the_endpoint(tmp_path: Path, failing: Endpoint) -> None:
    fleet = write_fleet(tmp_path, failing, "apifail", 1)
    failing.fail_calls("DescribeFleets", code="InternalFailure")
    result = failing.archfleet("spot", "status", "-f", str(fleet))
    assert result.returncode == 1, result.stderr
    line = one_error_line(result.stderr)
    assert "spot fleet apifail: listing fleets: InternalFailure: archfleet stand-in" in line
    assert line.endswith(f"(EC2 endpoint {failing.url})")


def test_an_unreachable_endpoint_is_exit_1_naming_it(tmp_path: Path, endpoint: Endpoint) -> None:
    """A closed loopback port: nothing listens, nothing leaves the machine."""
    closed = f"http://127.0.0.1:{free_port()}"
    fleet = write_fleet(tmp_path, endpoint, "unreachable", 1)
    result = endpoint.archfleet("spot", "prices", "-f", str(fleet), env={**endpoint.env, "AWS_ENDPOINT_URL": closed})
    assert result.returncode == 1, result.stderr
    assert f"cannot reach the EC2 endpoint {closed}" in one_error_line(result.stderr)


def test_ssm_lookups_never_go_to_an_endpoint_the_user_did_not_configure(tmp_path: Path, endpoint: Endpoint) -> None:
    """With only AWS_ENDPOINT_URL_EC2 set, boto3 would send SSM to AWS itself: refused (exit 2, nothing created);
    with AWS_ENDPOINT_URL_SSM too the lookup goes there (a closed loopback port here), and its failures name the
    SSM endpoint."""
    name = "ssmrule"
    fleet = write_fleet(tmp_path, endpoint, name, 1)
    ec2_only = {k: v for k, v in endpoint.env.items() if k != "AWS_ENDPOINT_URL"}
    ec2_only["AWS_ENDPOINT_URL_EC2"] = endpoint.url

    refused = endpoint.archfleet("spot", "up", "-f", str(fleet), name, env=ec2_only)
    assert refused.returncode == 2, refused.stderr
    line = one_error_line(refused.stderr)
    assert f"{fleet}:7: spot_fleets.{name}.ami.arm64 (ssm:" in line
    assert f"the EC2 endpoint is configured ({endpoint.url}) but SSM's is not" in line
    assert "set AWS_ENDPOINT_URL (every service) or AWS_ENDPOINT_URL_SSM" in line
    assert tagged(endpoint, name) == NOTHING_TAGGED

    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = endpoint.archfleet("spot", "up", "--dry", "-f", str(fleet), name,
                                     env={**ec2_only, "AWS_ENDPOINT_URL_SSM": closed})
    assert unreachable.returncode == 1, unreachable.stderr
    line = one_error_line(unreachable.stderr)
    assert f"spot_fleets.{name}.ami.arm64" in line and f"cannot reach the SSM endpoint {closed}" in line
    assert tagged(endpoint, name) == NOTHING_TAGGED
