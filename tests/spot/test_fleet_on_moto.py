"""`archfleet spot` end to end against moto_server over HTTP (real boto3; see conftest.py):
up, up again (no change), resize, interruption, down (nothing left), dry runs, error cases."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.spot.conftest import SCARCE_TYPE, Endpoint

ARM_SSM = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
X86_FILTER = '{filter: {name: "al2023-ami-2023.*-x86_64", owner: amazon}}'
NOTHING_TAGGED: dict[str, list[Any]] = {"fleets": [], "instances": [], "requests": [], "templates": []}  # see tagged()


def write_fleet(tmp_path: Path, endpoint: Endpoint, name: str, capacity: int, *,
                types: str = "[t4g.small, t4g.medium, t3.small]", extra: str = "",
                key_pair: str | None = None) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(f"""\
registry: {{lab: true}}
spot_fleets:
  {name}:
    target_capacity: {capacity}
    instance_types: {types}
    ami:
      arm64: {{ssm: {ARM_SSM}}}
      amd64: {X86_FILTER}
    key_pair: {key_pair or endpoint.key_pair}
    security_groups: [{endpoint.security_group}]
    subnets: [{", ".join(endpoint.subnets)}]
    tags: {{team: infra}}
    role: ci-runner
{extra}""")
    return path


def instance_lines(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines() if line.startswith("i-")]


def tagged(endpoint: Endpoint, name: str) -> dict[str, Any]:
    """Everything on the endpoint that still carries (or belongs to) the fleet's tag, and is not gone."""
    ec2 = endpoint.ec2
    flt = [{"Name": "tag:archfleet:fleet", "Values": [name]}]
    fleets = [f["FleetId"] for f in ec2.describe_fleets()["Fleets"]
              if {"Key": "archfleet:fleet", "Value": name} in f.get("Tags", [])
              and not f["FleetState"].startswith("deleted")]
    instances = [i for r in ec2.describe_instances(Filters=flt)["Reservations"] for i in r["Instances"]
                 if i["State"]["Name"] != "terminated"]
    all_ids = {i["InstanceId"] for r in ec2.describe_instances(Filters=flt)["Reservations"] for i in r["Instances"]}
    requests = [r["SpotInstanceRequestId"] for r in ec2.describe_spot_instance_requests()["SpotInstanceRequests"]
                if r["State"] in ("open", "active") and (r.get("InstanceId") in all_ids or
                                                        {"Key": "archfleet:fleet", "Value": name} in r.get("Tags", []))]
    templates = [t["LaunchTemplateName"] for t in ec2.describe_launch_templates(Filters=flt)["LaunchTemplates"]]
    return {"fleets": fleets, "instances": instances, "requests": requests, "templates": templates}


def test_up_is_idempotent_resizes_in_place_and_down_leaves_nothing(tmp_path: Path, endpoint: Endpoint) -> None:
    name = "lifecycle"
    fleet = write_fleet(tmp_path, endpoint, name, 2)
    started = time.monotonic()
    first = endpoint.archfleet("spot", "up", "-f", str(fleet), name)
    up_seconds = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    rows = instance_lines(first.stdout)
    assert len(rows) == 2
    for _instance_id, instance_type, arch, zone, lifecycle, run_state, address in rows:
        assert (instance_type, arch, lifecycle, run_state) == ("t4g.small", "arm64", "spot", "running")
        assert zone.startswith("eu-west-1") and address.count(".") == 3
    state = tagged(endpoint, name)
    assert len(state["fleets"]) == 1
    assert sorted(state["templates"]) == [f"archfleet-{name}-amd64", f"archfleet-{name}-arm64"]
    fleet_id = state["fleets"][0]
    described = endpoint.ec2.describe_fleets(FleetIds=[fleet_id])["Fleets"][0]
    assert described["Type"] == "maintain"
    assert described["SpotOptions"]["AllocationStrategy"] == "price-capacity-optimized"
    overrides = [o["InstanceType"] for c in described["LaunchTemplateConfigs"] for o in c["Overrides"]]
    assert overrides[0] == "t4g.small" and overrides[-1] == "t3.small"  # arm64 Graviton first
    tags = {t["Key"]: t["Value"] for t in state["instances"][0]["Tags"]}
    assert tags == {"archfleet:fleet": name, "archfleet:role": "ci-runner", "team": "infra"}

    again = endpoint.archfleet("spot", "up", "-f", str(fleet), name)
    assert again.returncode == 0, again.stderr
    assert "no change" in again.stderr
    assert instance_lines(again.stdout) == rows

    dry = endpoint.archfleet("spot", "up", "--dry", "-f", str(write_fleet(tmp_path, endpoint, name, 3)), name)
    assert dry.returncode == 0 and f"{name}: would modify fleet {fleet_id}: target capacity 2 -> 3" in dry.stdout
    assert len(tagged(endpoint, name)["instances"]) == 2

    bigger = endpoint.archfleet("spot", "up", "-f", str(fleet), name)
    assert bigger.returncode == 0, bigger.stderr
    assert f"modify fleet {fleet_id}: target capacity 2 -> 3" in bigger.stderr
    assert len(instance_lines(bigger.stdout)) == 3
    assert tagged(endpoint, name)["fleets"] == [fleet_id]

    smaller = endpoint.archfleet("spot", "up", "-f", str(write_fleet(tmp_path, endpoint, name, 1)), name)
    assert smaller.returncode == 0, smaller.stderr
    assert len(instance_lines(smaller.stdout)) == 1 and tagged(endpoint, name)["fleets"] == [fleet_id]

    status = endpoint.archfleet("spot", "status", "-f", str(fleet), name)
    assert status.returncode == 0, status.stderr
    assert f"fleet {fleet_id} active maintain, target 1, 1 running in it" in status.stdout

    dry_down = endpoint.archfleet("spot", "down", "--dry", "-f", str(fleet), name)
    assert dry_down.returncode == 0, dry_down.stderr
    assert f"{name}: would delete fleet {fleet_id}" in dry_down.stdout
    assert f"{name}: would terminate i-" in dry_down.stdout
    assert f"{name}: would delete launch template archfleet-{name}-arm64" in dry_down.stdout
    assert tagged(endpoint, name)["fleets"] == [fleet_id] and len(tagged(endpoint, name)["templates"]) == 2

    started = time.monotonic()
    down = endpoint.archfleet("spot", "down", "-f", str(fleet), name)
    down_seconds = time.monotonic() - started
    assert down.returncode == 0, down.stderr
    assert tagged(endpoint, name) == NOTHING_TAGGED
    after = endpoint.archfleet("spot", "status", "-f", str(fleet), name)
    assert after.returncode == 0 and "no fleet" in after.stdout and "leftover" not in after.stdout
    assert endpoint.archfleet("spot", "down", "-f", str(fleet), name).stdout.strip() == f"{name}: nothing to remove"
    print(f"\nmoto: spot up (new fleet, 2 instances) {up_seconds:.2f}s, spot down {down_seconds:.2f}s")


def test_up_after_an_interruption_brings_the_fleet_back_to_its_target(tmp_path: Path, endpoint: Endpoint) -> None:
    name = "interrupted"
    fleet = write_fleet(tmp_path, endpoint, name, 2)
    first = endpoint.archfleet("spot", "up", "-f", str(fleet), name)
    assert first.returncode == 0, first.stderr
    lost = instance_lines(first.stdout)[0][0]
    endpoint.ec2.terminate_instances(InstanceIds=[lost])  # what a spot interruption does to an instance
    status = endpoint.archfleet("spot", "status", "-f", str(fleet), name)
    assert lost not in status.stdout
    again = endpoint.archfleet("spot", "up", "-f", str(fleet), name)
    assert again.returncode == 0, again.stderr
    rows = instance_lines(again.stdout)
    assert len(rows) == 2 and lost not in {r[0] for r in rows}
    assert len(tagged(endpoint, name)["fleets"]) == 1
    assert endpoint.archfleet("spot", "down", "-f", str(fleet), name).returncode == 0
    assert tagged(endpoint, name) == NOTHING_TAGGED


def test_a_dry_up_creates_nothing(tmp_path: Path, endpoint: Endpoint) -> None:
    name = "dry"
    result = endpoint.archfleet("spot", "up", "--dry", "-f", str(write_fleet(tmp_path, endpoint, name, 2)), name)
    assert result.returncode == 0, result.stderr
    assert f"{name}: would create launch template archfleet-{name}-arm64" in result.stdout
    assert f"{name}: would create EC2 fleet (maintain, price-capacity-optimized, 2 spot)" in result.stdout
    assert tagged(endpoint, name) == NOTHING_TAGGED


def test_prices_for_the_declared_types(tmp_path: Path, endpoint: Endpoint) -> None:
    result = endpoint.archfleet("spot", "prices", "-f", str(write_fleet(tmp_path, endpoint, "priced", 1)))
    assert result.returncode == 0, result.stderr
    pools = [line.split() for line in result.stdout.splitlines() if line.startswith(("t4g.", "t3."))]
    zones = {p[1] for p in pools}
    assert {p[0] for p in pools} == {"t4g.small", "t4g.medium", "t3.small"}
    assert len(zones) == 2  # the fleet's two subnets' AZs only
    # moto's prices are all equal: the tie goes to the first preference.
    assert result.stdout.splitlines()[-1].startswith("cheapest: t4g.small in ")


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("archfleet: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_no_credentials_is_a_one_line_input_error(tmp_path: Path, endpoint: Endpoint) -> None:
    fleet = write_fleet(tmp_path, endpoint, "nocreds", 1)
    env = {k: v for k, v in endpoint.env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = endpoint.archfleet("spot", "up", "-f", str(fleet), env=env)
    assert result.returncode == 2
    assert "no AWS credentials" in one_error_line(result.stderr)


def test_unknown_region_is_a_one_line_input_error(tmp_path: Path, endpoint: Endpoint) -> None:
    fleet = write_fleet(tmp_path, endpoint, "noregion", 1, extra="    region: xx-nowhere-9\n")
    result = endpoint.archfleet("spot", "up", "-f", str(fleet))
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "unknown AWS region 'xx-nowhere-9'" in line and f"{fleet}:3" in line


def test_a_fleet_that_fails_to_launch_leaves_no_launch_templates(tmp_path: Path, endpoint: Endpoint) -> None:
    """moto (with key-pair validation on) refuses the fleet after archfleet created its templates."""
    name = "nokey"
    fleet = write_fleet(tmp_path, endpoint, name, 1, key_pair="no-such-key")
    result = endpoint.archfleet("spot", "up", "-f", str(fleet))
    assert result.returncode == 2
    assert "InvalidKeyPair.NotFound" in one_error_line(result.stderr)
    assert "removing launch template" in result.stderr
    assert tagged(endpoint, name) == NOTHING_TAGGED


def test_an_architecture_without_an_ami_is_named(tmp_path: Path, endpoint: Endpoint) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"""\
registry: {{lab: true}}
spot_fleets:
  noami:
    target_capacity: 1
    instance_types: [t4g.small, t3.small]
    ami: {{arm64: {{ssm: {ARM_SSM}}}}}
""")
    result = endpoint.archfleet("spot", "up", "-f", str(fleet))
    assert result.returncode == 2
    assert f"{fleet}:3: spot_fleets.noami.ami: no amd64 AMI for t3.small" in one_error_line(result.stderr)


def test_a_max_price_under_every_pool_fails_before_anything_is_created(tmp_path: Path, endpoint: Endpoint) -> None:
    name = "toocheap"
    fleet = write_fleet(tmp_path, endpoint, name, 1, extra="    max_price: 0.000001\n")
    result = endpoint.archfleet("spot", "up", "-f", str(fleet))
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert f"{fleet}:3: spot fleet {name}: insufficient spot capacity at max_price 1e-06" in line
    assert tagged(endpoint, name) == NOTHING_TAGGED


def test_a_service_specific_endpoint_variable_is_honoured(tmp_path: Path, endpoint: Endpoint) -> None:
    """AWS_ENDPOINT_URL_EC2 (boto3's per-service setting) wins over AWS_ENDPOINT_URL, here a closed local port
    (so a client that ignored it would fail locally, never reach out)."""
    env = {**endpoint.env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ENDPOINT_URL_EC2": endpoint.url}
    result = endpoint.archfleet("spot", "prices", "-f", str(write_fleet(tmp_path, endpoint, "perservice", 1)), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("cheapest: t4g.small in ")


def test_insufficient_capacity_fails_and_removes_what_the_run_created(tmp_path: Path, endpoint: Endpoint) -> None:
    """The test server's t3.nano pool holds one instance: a fleet of two stays short until --wait runs out."""
    name = "scarce"
    fleet = write_fleet(tmp_path, endpoint, name, 2, types=f"[{SCARCE_TYPE}]")
    result = endpoint.archfleet("spot", "up", "--wait", "3", "-f", str(fleet))
    assert result.returncode == 1, result.stderr
    line = one_error_line(result.stderr)
    assert f"spot fleet {name}: insufficient spot capacity: 1 of 2 instances running after 3s" in line
    assert "removing fleet" in result.stderr and "removing launch template" in result.stderr
    assert tagged(endpoint, name) == NOTHING_TAGGED


def test_an_exhausted_pool_is_filled_from_the_next_type_of_the_other_architecture(tmp_path: Path,
                                                                                  endpoint: Endpoint) -> None:
    """The test server's t3.nano pool holds one instance: a fleet of two gets the second from t4g.small, each
    from its architecture's launch template (one amd64 instance and one arm64)."""
    name = "mixed"
    fleet = write_fleet(tmp_path, endpoint, name, 2, types=f"[{SCARCE_TYPE}, t4g.small]")
    up = endpoint.archfleet("spot", "up", "--wait", "30", "-f", str(fleet), name)
    assert up.returncode == 0, up.stderr
    assert sorted((row[1], row[2]) for row in instance_lines(up.stdout)) == [(SCARCE_TYPE, "amd64"),
                                                                            ("t4g.small", "arm64")]
    down = endpoint.archfleet("spot", "down", "-f", str(fleet), name)
    assert down.returncode == 0, down.stderr
    assert tagged(endpoint, name) == NOTHING_TAGGED
