"""`archfleet spot up` with `user_data: true` against the EC2/SSM test server (moto): the launch templates require
IMDSv2 with a hop limit of 1, carry the instance profile and the boot script (archfleet/spot/user_data.py), and
the registry password is a SecureString parameter, never in the user-data. Up again changes nothing."""

from __future__ import annotations

import base64
import gzip
import re
from pathlib import Path

import boto3
import pytest

from archfleet.lab.state import load
from archfleet.spot.user_data import decoded
from tests.spot.conftest import REGION, Endpoint
from tests.spot.test_fleet_on_moto import write_fleet

pytestmark = pytest.mark.lab  # the lab's EC2 test server and its registry record

NAME = "joins"
PROFILE = "archfleet-joins"


def templates(endpoint: Endpoint) -> dict[str, dict[str, object]]:
    flt = [{"Name": "tag:archfleet:fleet", "Values": [NAME]}]
    found = {}
    for template in endpoint.ec2.describe_launch_templates(Filters=flt)["LaunchTemplates"]:
        latest = endpoint.ec2.describe_launch_template_versions(
            LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Latest"])["LaunchTemplateVersions"][0]
        found[template["LaunchTemplateName"]] = latest["LaunchTemplateData"]
    return found


def test_launch_templates_carry_imdsv2_the_profile_and_a_boot_script_without_secrets(
        tmp_path: Path, endpoint: Endpoint) -> None:
    fleet = write_fleet(tmp_path, endpoint, NAME, 1, extra=f"    user_data: true\n    instance_profile: {PROFILE}\n"
                                                          "    ssm_prefix: /archfleet/test-joins\n")
    with fleet.open("a") as out:
        out.write("services: {}\n")
    try:
        up = endpoint.archfleet("spot", "up", "-f", str(fleet), NAME, "--wait", "60")
        assert up.returncode == 0, up.stderr
        lab = load()
        password = Path(lab.registry.password_file).read_text().strip()
        parameter = f"/archfleet/test-joins/registry/{lab.registry.address.replace(':', '_')}"
        assert f"write SecureString {parameter}" in up.stderr, up.stderr
        ssm = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=REGION).client("ssm", endpoint_url=endpoint.url)
        stored = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]
        assert stored["Type"] == "SecureString"
        assert base64.b64decode(stored["Value"]).decode() == password

        found = templates(endpoint)
        assert sorted(found) == [f"archfleet-{NAME}-amd64", f"archfleet-{NAME}-arm64"]
        for data in found.values():
            assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1,
                                               "HttpEndpoint": "enabled"}, data
            assert data["IamInstanceProfile"] == {"Name": PROFILE}
            script = decoded(str(data["UserData"]))
            assert script.startswith("#!/bin/sh\n")
            assert password not in script and base64.b64encode(password.encode()).decode() not in script
            assert "RELEASE_POINTER=/archfleet/test-joins/release/current" in script  # the services: the release's
        release = ssm.get_parameter(Name="/archfleet/test-joins/release/current")["Parameter"]["Value"]
        for arch in ("amd64", "arm64"):
            parts = int(ssm.get_parameter(Name=f"/archfleet/test-joins/releases/{release}/{arch}/head")[
                "Parameter"]["Value"].split()[1])
            packed = "".join(ssm.get_parameter(Name=f"/archfleet/test-joins/releases/{release}/{arch}/{i}")[
                "Parameter"]["Value"] for i in range(parts))
            script = gzip.decompress(base64.b64decode(packed)).decode()
            assert password not in script and base64.b64encode(password.encode()).decode() not in script
            assert f"ssm_get {parameter} " in script and "docker login" in script  # read with the instance role
        # The same spec: no new template version, no parameter rewritten.
        again = endpoint.archfleet("spot", "up", "-f", str(fleet), NAME, "--wait", "60")
        assert again.returncode == 0, again.stderr
        assert f"spot fleet {NAME}: no change" in again.stderr, again.stderr
    finally:
        down = endpoint.archfleet("spot", "down", "-f", str(fleet), NAME)
        assert down.returncode == 0, down.stderr
    assert re.search(r"deleted \d+ SSM parameter\(s\) under /archfleet/test-joins", down.stderr), down.stderr
    assert ssm.get_parameters_by_path(Path="/archfleet/test-joins", Recursive=True)["Parameters"] == []
