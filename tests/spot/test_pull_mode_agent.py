"""The pull agent (tasks/pull_agent_commands.py) run here with sh against the EC2/SSM test server (moto) and the
metadata stand-in, tick by tick: it applies release/current and records it (on the host and in the instance's
tags), does nothing while release/current names what it applied, records a release that fails with its reason
and keeps the one it ran, waits for the backoff before trying that release again, applies the next one, and never
reads a release that is written but not current."""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from archfleet.operator import RunInfo
from archfleet.spot.connection import AwsClient
from archfleet.spot.release import publish
from archfleet.spot.user_data import RELEASE_TAG, SPOT_DIR, BootPlan, pull_agent_script
from archfleet.tasks.pull_agent_commands import CONVERGE_TAG
from tests.spot.conftest import REGION, Endpoint
from tests.spot.test_release import PREFIX, SPEC, ec2, host  # noqa: F401  (ec2: the fixture, with its clean-up)
from tests.standins.cloud_init import RoleMetadataStandIn
from tests.standins.instance_metadata import serve

pytestmark = pytest.mark.lab  # the lab's EC2 test server, as tests/spot/test_release.py


@dataclass
class Instance:
    endpoint: Endpoint
    instance_id: str
    agent: str  # the agent's text, its SPOT_DIR under the test's folder
    spot_dir: Path

    def tick(self) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"]}  # no AWS settings: only the instance role's credentials
        return subprocess.run(["sh", "-c", self.agent], capture_output=True, text=True, check=False, timeout=60,
                              env=env)

    def tags(self) -> dict[str, str]:
        found = self.endpoint.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [self.instance_id]}])
        return {t["Key"]: t["Value"] for t in found["Tags"]}

    def read(self, name: str) -> str:
        return (self.spot_dir / name).read_text()


@pytest.fixture
def instance(ec2: AwsClient, endpoint: Endpoint, tmp_path: Path) -> Iterator[Instance]:  # noqa: F811
    image = endpoint.ec2.describe_images()["Images"][0]["ImageId"]
    instance_id = endpoint.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    server = serve(RoleMetadataStandIn(instance_id=instance_id), "127.0.0.1")
    plan = BootPlan(fleet=SPEC.name, arch="amd64", region=REGION, metadata_url=f"http://127.0.0.1:{server.server_address[1]}",
                    ssm_endpoint=endpoint.url, ecr_endpoint=endpoint.url, ec2_endpoint=endpoint.url,
                    parameter_prefix=PREFIX)
    agent = pull_agent_script(plan, 5)
    assert f"SPOT_DIR={SPOT_DIR}\n" in agent
    spot_dir = tmp_path / "spot"
    try:
        yield Instance(endpoint, instance_id, agent.replace(f"SPOT_DIR={SPOT_DIR}\n", f"SPOT_DIR={spot_dir}\n"),
                       spot_dir)
    finally:
        endpoint.ec2.terminate_instances(InstanceIds=[instance_id])
        server.shutdown()
        server.server_close()


def test_the_agent_applies_release_current_records_failures_and_backs_off(ec2: AwsClient,  # noqa: F811
                                                                          instance: Instance) -> None:
    first = RunInfo("spot up")
    publish(ec2, SPEC, [host("amd64", "say one\n")], first)
    applied = instance.tick()
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"archfleet-boot: converging from nothing to release {first.id}\narchfleet-boot: one\n" in applied.stdout
    assert instance.read("release") == f"{first.id}\n"
    assert instance.read("result").startswith(f"{first.id} ") and instance.read("result").endswith(" ok\n")
    tags = instance.tags()
    assert tags[RELEASE_TAG] == first.id and tags[CONVERGE_TAG] == instance.read("result").strip(), tags

    idle = instance.tick()  # release/current names what it applied: nothing
    assert (idle.returncode, idle.stdout, idle.stderr) == (0, "", "")

    failing = RunInfo("sync")  # the release's own step fails (a container that does not start)
    publish(ec2, SPEC, [host("amd64", "say two\ndie 'web did not start (put back the previous one)'\n")], failing)
    failed = instance.tick()
    assert failed.returncode == 1 and "archfleet-boot: two" in failed.stdout, failed.stdout + failed.stderr
    assert instance.read("release") == f"{first.id}\n"  # still the one it runs
    result = instance.read("result")
    assert result.startswith(f"{failing.id} ") and result.endswith(
        " failed: web did not start (put back the previous one)\n"), result
    tags = instance.tags()
    assert tags[RELEASE_TAG] == first.id and tags[CONVERGE_TAG] == result.strip(), tags
    backing_off = instance.tick()  # the same release, failed a moment ago: not tried again yet
    assert (backing_off.returncode, backing_off.stdout) == (0, ""), backing_off.stderr
    (instance.spot_dir / "failed").write_text(f"{failing.id} 0\n")  # as if 10 intervals had passed
    retried = instance.tick()
    assert retried.returncode == 1 and "archfleet-boot: two" in retried.stdout, retried.stdout

    third = RunInfo("sync")
    publish(ec2, SPEC, [host("amd64", "say three\n")], third)
    assert instance.tick().returncode == 0
    assert instance.read("release") == f"{third.id}\n" and not (instance.spot_dir / "failed").exists()

    # A release written under releases/ but never made current (as a sync whose canary failed would leave it):
    # the agent does not see it.
    script = "say four\n"
    packed = base64.b64encode(gzip.compress(script.encode(), mtime=0)).decode()
    ssm = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                region_name=REGION).client("ssm", endpoint_url=instance.endpoint.url)
    for name, value in ((f"{PREFIX}/releases/never-current/amd64/head",
                         f"{hashlib.sha256(script.encode()).hexdigest()} 1"),
                        (f"{PREFIX}/releases/never-current/amd64/0", packed)):
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
    ignored = instance.tick()
    assert (ignored.returncode, ignored.stdout) == (0, ""), ignored.stderr
    assert instance.read("release") == f"{third.id}\n" and instance.tags()[RELEASE_TAG] == third.id
