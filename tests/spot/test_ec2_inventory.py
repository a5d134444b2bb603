"""inventories/ec2.py with plain pyinfra against moto_server: groups by arch, lifecycle and role; host data;
the address to connect to is configurable."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.spot.conftest import BIN, PROJECT, Endpoint
from tests.spot.test_fleet_on_moto import X86_FILTER, write_fleet

NAME = "inventoried"


def debug_inventory(endpoint: Endpoint, **settings: str) -> tuple[int, dict[str, dict[str, Any]], str]:
    """`pyinfra inventories/ec2.py --dry debug-inventory`: {host: {"groups": [...], "data": {...}}}."""
    env = {**endpoint.env, **settings}
    result = subprocess.run([str(BIN / "pyinfra"), "inventories/ec2.py", "--dry", "debug-inventory"], cwd=PROJECT,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    hosts: dict[str, dict[str, Any]] = {}
    for match in re.finditer(r"^\[(\S+)\]\s*\n--> Groups: ([^\n]*)\n--> Data:\n(\{.*?\n\})", output, re.M | re.S):
        hosts[match[1]] = {"groups": [g.strip() for g in match[2].split(",")], "data": json.loads(match[3])}
    return result.returncode, hosts, output


@pytest.fixture(scope="module")
def fleet(endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two spot arm64 instances of the fleet (role ci-runner) and one on-demand amd64 host tagged into it (proxy)."""
    path = write_fleet(tmp_path_factory.mktemp("inventory"), endpoint, NAME, 2)
    result = endpoint.archfleet("spot", "up", "-f", str(path), NAME)
    assert result.returncode == 0, result.stderr
    image = sorted(endpoint.ec2.describe_images(Owners=["amazon"], Filters=[
        {"Name": "name", "Values": [X86_FILTER.split('"')[1]]}])["Images"], key=lambda i: i["ImageId"])[0]["ImageId"]
    on_demand = endpoint.ec2.run_instances(
        ImageId=image, InstanceType="t3.small", MinCount=1, MaxCount=1, SubnetId=endpoint.subnets[0],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [
            {"Key": "archfleet:fleet", "Value": NAME}, {"Key": "archfleet:role", "Value": "proxy"},
            {"Key": "bastion-address", "Value": "10.9.8.7"}]}],
    )["Instances"][0]["InstanceId"]
    yield {"fleet_file": str(path), "on_demand": on_demand}
    endpoint.ec2.terminate_instances(InstanceIds=[on_demand])
    assert endpoint.archfleet("spot", "down", "-f", str(path), NAME).returncode == 0


def test_groups_and_host_data(endpoint: Endpoint, fleet: dict[str, str]) -> None:
    code, hosts, output = debug_inventory(endpoint, ARCHFLEET_EC2_FLEET=NAME, ARCHFLEET_EC2_SSH_USER="admin")
    assert code == 0, output
    assert len(hosts) == 3, output
    on_demand = hosts.pop(fleet["on_demand"])
    assert set(on_demand["groups"]) == {"amd64", "on_demand", "proxy", "ec2"}
    assert on_demand["data"]["ec2_lifecycle"] == "on_demand" and on_demand["data"]["spot"] is False
    assert on_demand["data"]["ec2_instance_type"] == "t3.small" and on_demand["data"]["ec2_arch"] == "amd64"
    for instance_id, host in hosts.items():
        assert set(host["groups"]) == {"arm64", "spot", "ci-runner", "ec2"}
        data = host["data"]
        assert data["ec2_instance_id"] == instance_id and data["spot"] is True and data["role"] == "ci-runner"
        assert data["ec2_instance_type"] == "t4g.small" and data["ec2_availability_zone"].startswith("eu-west-1")
        assert data["ssh_user"] == "admin"
        described = endpoint.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        # auto: the public IP when there is one, else the private IP
        assert data["ssh_hostname"] == (described.get("PublicIpAddress") or described["PrivateIpAddress"])


@pytest.mark.parametrize(("address", "field"), [("private_ip", "PrivateIpAddress"), ("private_dns", "PrivateDnsName")])
def test_the_address_to_connect_to_is_configurable(endpoint: Endpoint, fleet: dict[str, str], address: str,
                                                   field: str) -> None:
    code, hosts, output = debug_inventory(endpoint, ARCHFLEET_EC2_FLEET=NAME, ARCHFLEET_EC2_ADDRESS=address)
    assert code == 0, output
    assert len(hosts) == 3, output
    for instance_id, host in hosts.items():
        described = endpoint.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        assert host["data"]["ssh_hostname"] == described[field]


def test_an_address_from_a_tag_leaves_out_hosts_without_it(endpoint: Endpoint, fleet: dict[str, str]) -> None:
    code, hosts, output = debug_inventory(endpoint, ARCHFLEET_EC2_FLEET=NAME,
                                          ARCHFLEET_EC2_ADDRESS="tag:bastion-address")
    assert code == 0, output
    assert list(hosts) == [fleet["on_demand"]] and hosts[fleet["on_demand"]]["data"]["ssh_hostname"] == "10.9.8.7"
    assert output.count("has no tag:bastion-address address, left out") == 2


def test_without_a_fleet_name_pyinfra_fails_and_says_why(endpoint: Endpoint) -> None:
    code, hosts, output = debug_inventory(endpoint)
    assert code != 0 and not hosts
    assert "set ARCHFLEET_EC2_FLEET" in output


HOSTILE = "-oProxyCommand=touch {marker}"


def test_a_tag_that_is_no_host_name_never_reaches_ssh(endpoint: Endpoint, fleet: dict[str, str],
                                                      tmp_path: Path) -> None:
    """Anyone who may tag an instance chooses a tag's value: with ``ARCHFLEET_EC2_ADDRESS=tag:NAME`` a value such as
    ``-oProxyCommand=...`` is left out of the inventory (said on stderr), so no command that connects (here
    ``archfleet verify``, read-only) puts it in an ssh argv, where ssh would run it on this machine."""
    marker = tmp_path / "proxy-command-ran"
    hostile = sorted(i for i in hosts_of(endpoint, NAME) if i != fleet["on_demand"])[0]
    endpoint.ec2.create_tags(Resources=[hostile], Tags=[{"Key": "bastion-address",
                                                         "Value": HOSTILE.format(marker=marker)}])
    try:
        code, hosts, output = debug_inventory(endpoint, ARCHFLEET_EC2_FLEET=NAME,
                                              ARCHFLEET_EC2_ADDRESS="tag:bastion-address")
        assert code == 0, output
        assert hostile not in hosts, output
        assert f"{hostile}'s tag:bastion-address '-oProxyCommand=touch {marker}' is not a host name" in output
        path = tmp_path / "fleet.yaml"
        path.write_text(f"registry: {{address: 127.0.0.1:9}}\ninventory: {PROJECT / 'inventories' / 'ec2.py'}\n"
                        "services: {}\n"
                        f"ssh: {{known_hosts: {tmp_path / 'known_hosts'}}}\n")
        env = {**endpoint.env, "ARCHFLEET_EC2_FLEET": NAME, "ARCHFLEET_EC2_ADDRESS": "tag:bastion-address"}
        verify = endpoint.archfleet("verify", "-f", str(path), "--limit", hostile, env=env, timeout=120)
        assert verify.returncode != 0 and not marker.exists(), verify.stdout + verify.stderr
        assert hostile in verify.stderr, verify.stderr  # named: the --limit matches no host of the inventory
    finally:
        endpoint.ec2.delete_tags(Resources=[hostile], Tags=[{"Key": "bastion-address"}])


def hosts_of(endpoint: Endpoint, name: str) -> list[str]:
    filters = [{"Name": "tag:archfleet:fleet", "Values": [name]},
               {"Name": "instance-state-name", "Values": ["running"]}]
    return [i["InstanceId"] for r in endpoint.ec2.describe_instances(Filters=filters)["Reservations"]
            for i in r["Instances"]]
