"""A spot fleet's release in SSM (archfleet/spot/release.py) on the EC2/SSM test server (moto): published once per
change, the pointer last; the same scripts publish nothing; old releases pruned unless current, the one replaced,
or booted by a live instance (its tag); and the boot script's release lines, run here with sh against the test
server and the metadata stand-in: they fetch the chunks, check the sha256, tag the instance and run the release,
and refuse a release whose chunks do not match."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from archfleet.fleet.spot import SpotFleetSpec
from archfleet.operator import RunInfo
from archfleet.spot.connection import AwsClient, connect, ssm_client
from archfleet.spot.joining import JoiningHost
from archfleet.spot.release import current_release, publish
from archfleet.spot.user_data import BOOT_FUNCTIONS, RELEASE_LINES, RELEASE_TAG
from tests.spot.conftest import REGION, Endpoint
from tests.standins.cloud_init import RoleMetadataStandIn
from tests.standins.instance_metadata import serve

NAME = "releases"
PREFIX = "/archfleet/test-releases"
SPEC = SpotFleetSpec(NAME, 1, ("t3.small",), {}, user_data=True, ssm_prefix=PREFIX)


def host(arch: str, script: str) -> JoiningHost:
    return JoiningHost(arch, "", script, {}, ())


def big(word: str) -> str:
    """A script over one chunk even gzipped: random-looking text (a CA, say) does not shrink."""
    return f"say {word}\n: " + os.urandom(6000).hex() + "\n"


@pytest.fixture
def ec2(endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsClient]:
    for key, value in endpoint.env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    client = connect(REGION)
    yield client
    ssm = ssm_client(client, "cleanup").client
    names = [p["Name"] for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=PREFIX, Recursive=True)
             for p in page["Parameters"]]
    for start in range(0, len(names), 10):
        ssm.delete_parameters(Names=names[start:start + 10])


def release_ids(ec2: AwsClient) -> set[str]:
    ssm = ssm_client(ec2, "test").client
    names = [p["Name"] for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=f"{PREFIX}/releases", Recursive=True) for p in page["Parameters"]]
    return {name.split("/")[4] for name in names}


def test_a_release_is_published_once_per_change_and_old_ones_are_pruned(ec2: AwsClient,
                                                                        endpoint: Endpoint) -> None:
    first, same, second, third = (RunInfo("sync") for _ in range(4))
    lines = publish(ec2, SPEC, [host("amd64", "say one\n"), host("arm64", big("one"))], first)
    assert lines[-1].startswith(f"publish release {first.id} (amd64: -; arm64: -)"), lines
    current = current_release(ssm_client(ec2, "test"), SPEC)
    assert current is not None and current.id == first.id and sorted(current.arches) == ["amd64", "arm64"]
    assert current.arches["arm64"]["parts"] > 1 and current.document["command"] == "sync"

    lines = publish(ec2, SPEC, [host("amd64", "say one\n"), host("arm64", "x")], same)  # arm64 changed
    assert lines[-1].startswith(f"publish release {same.id} (amd64: -; arm64: -), replacing {first.id}"), lines
    again = publish(ec2, SPEC, [host("amd64", "say one\n"), host("arm64", "x")], RunInfo("sync"))
    assert again == [], again  # the same scripts: nothing published
    assert release_ids(ec2) == {first.id, same.id}  # the one replaced is kept

    # An instance of the fleet that booted the first release keeps it; the rest go.
    image = endpoint.ec2.describe_images()["Images"][0]["ImageId"]
    instance = endpoint.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[{
        "ResourceType": "instance", "Tags": [{"Key": "archfleet:fleet", "Value": NAME},
                                             {"Key": RELEASE_TAG, "Value": first.id}]}])["Instances"][0]["InstanceId"]
    try:
        publish(ec2, SPEC, [host("amd64", "say two\n")], second)
        lines = publish(ec2, SPEC, [host("amd64", "say three\n")], third)
        assert f"delete release {same.id} (no instance booted it, not current)" in lines, lines
        assert release_ids(ec2) == {first.id, second.id, third.id}
    finally:
        endpoint.ec2.terminate_instances(InstanceIds=[instance])
    assert current_release(ssm_client(ec2, "test"), SPEC).id == third.id  # type: ignore[union-attr]


def boot(endpoint: Endpoint, metadata_url: str, spot_dir: Path) -> subprocess.CompletedProcess[str]:
    text = "\n".join([BOOT_FUNCTIONS, f"METADATA_URL={metadata_url}", f"REGION={REGION}", "ARCH=amd64",
                      f"SSM_ENDPOINT={endpoint.url}", f"EC2_ENDPOINT={endpoint.url}",
                      f"RELEASE_POINTER={PREFIX}/release/current", f"RELEASES={PREFIX}/releases",
                      "RELEASE_TAG_KEY=archfleet%3Arelease", f"SPOT_DIR={spot_dir}", RELEASE_LINES])
    env = {"PATH": os.environ["PATH"]}  # no AWS settings: only the instance role's credentials
    return subprocess.run(["sh", "-c", text], capture_output=True, text=True, check=False, timeout=60, env=env)


def test_the_boot_script_runs_the_current_release_and_tags_its_instance(ec2: AwsClient, endpoint: Endpoint,
                                                                        tmp_path: Path) -> None:
    run = RunInfo("spot up")
    publish(ec2, SPEC, [host("amd64", big("from-the-release"))], run)
    image = endpoint.ec2.describe_images()["Images"][0]["ImageId"]
    instance = endpoint.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    metadata = RoleMetadataStandIn(instance_id=instance)
    server = serve(metadata, "127.0.0.1")
    try:
        booted = boot(endpoint, f"http://127.0.0.1:{server.server_address[1]}", tmp_path / "spot")
        assert booted.returncode == 0, booted.stdout + booted.stderr
        assert f"archfleet-boot: release {run.id}\narchfleet-boot: from-the-release\n" in booted.stdout
        assert (tmp_path / "spot" / "release").read_text() == f"{run.id}\n"
        tags = endpoint.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance]}])["Tags"]
        assert {t["Key"]: t["Value"] for t in tags}[RELEASE_TAG] == run.id

        ssm = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=REGION).client("ssm", endpoint_url=endpoint.url)
        ssm.put_parameter(Name=f"{PREFIX}/releases/{run.id}/amd64/1", Value="AAAA", Type="String", Overwrite=True)
        tampered = boot(endpoint, f"http://127.0.0.1:{server.server_address[1]}", tmp_path / "again")
        assert tampered.returncode == 1, tampered.stdout + tampered.stderr
        assert "archfleet-failure: release" in tampered.stderr and "from-the-release" not in tampered.stdout
    finally:
        endpoint.ec2.terminate_instances(InstanceIds=[instance])
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Plan:
    platform: str
    changed: bool
    steps: tuple[Any, ...] = ()
    unchanged: tuple[Any, ...] = ()


@dataclass
class Entry:
    status: str
    reason: str = ""


@dataclass
class Report:
    hosts: dict[str, Entry]

    @property
    def ok(self) -> bool:
        return all(entry.status in ("updated", "unchanged") for entry in self.hosts.values())


@pytest.mark.parametrize(("statuses", "said"), [
    # The spot host was rolled back (the canary failed): nothing is published, and the sync says so.
    ({"i-0a": "rolled_back", "lab-1": "unchanged"}, ["sync: spot fleet ci-arm: no release published (the sync "
                                                    "failed or rolled back somewhere)"]),
    # It stood, but another host failed: the services it runs may not be the ones that stood there.
    ({"i-0a": "updated", "lab-1": "failed"}, ["sync: spot fleet ci-arm: no release published (the sync failed or "
                                              "rolled back somewhere)"]),
])
def test_a_sync_that_did_not_stand_publishes_nothing(tmp_path: Path, statuses: dict[str, str],
                                                     said: list[str]) -> None:
    """Offline: no AWS call is made (none is configured; one would fail and say so)."""
    from archfleet.spot.release import publish_after_sync
    from tests.spot.test_spec import GOOD, load

    inventory = tmp_path / "inventory.py"
    inventory.write_text('globals().update({"spot": [("i-0a", {"ec2_fleet": "ci-arm"}), ("i-0b", '
                         '{"ec2_fleet": "x86"})], "lab": ["lab-1"]})\n')
    fleet = load(tmp_path, GOOD.replace("    role: ci-runner\n", "    role: ci-runner\n    user_data: true\n")
                 + f"inventory: {inventory}\n")
    plans = {"i-0a": Plan("linux/arm64", True), "i-0b": Plan("linux/amd64", True), "lab-1": Plan("linux/amd64", True)}
    lines: list[str] = []
    publish_after_sync(fleet, plans, Report({h: Entry(s) for h, s in statuses.items()}), None, RunInfo("sync"),
                       lines.append)
    assert lines == said  # i-0b's fleet has no user-data: nothing to publish for it


def test_a_sync_that_changed_no_host_of_a_user_data_fleet_publishes_nothing(tmp_path: Path) -> None:
    from archfleet.spot.release import publish_after_sync
    from tests.spot.test_spec import GOOD, load

    inventory = tmp_path / "inventory.py"
    inventory.write_text('globals().update({"spot": [("i-0a", {"ec2_fleet": "ci-arm"})], "lab": ["lab-1"]})\n')
    fleet = load(tmp_path, GOOD.replace("    role: ci-runner\n", "    role: ci-runner\n    user_data: true\n")
                 + f"inventory: {inventory}\n")
    lines: list[str] = []
    publish_after_sync(fleet, {"i-0a": Plan("linux/arm64", False), "lab-1": Plan("linux/amd64", True)},
                       Report({"i-0a": Entry("unchanged"), "lab-1": Entry("updated")}), None, RunInfo("sync"),
                       lines.append)
    assert lines == []


def test_a_rolled_back_container_takes_its_files_content_from_the_same_version_or_is_refused() -> None:
    """A rollback's container comes from a host's release record, without file contents: the fleet file's
    rendering of the same version (same folder) gives them; a version only the hosts hold cannot be published."""
    from dataclasses import replace

    from archfleet.errors import OperationFailed
    from archfleet.services.desired import managed_file
    from archfleet.spot.joining import with_file_contents
    from tests.spot.test_user_data import KEY, container

    token = managed_file("web", "token", "/run/secrets/token", b"s3cret", True, KEY)
    rendered = container("web", [token])
    recorded = replace(rendered, digest="sha256:" + "b" * 64,
                       files=[replace(token, content=b"", sha256="")])  # as desired_from_entry gives it
    taken = with_file_contents(recorded, rendered)
    assert taken.digest == "sha256:" + "b" * 64 and taken.files == [token]
    older = managed_file("web", "token", "/run/secrets/token", b"old secret", True, KEY)
    with pytest.raises(OperationFailed, match="whose content only the hosts hold"):
        with_file_contents(replace(recorded, files=[replace(older, content=b"", sha256="")]), rendered)
