"""End to end: a spot fleet's replacements boot the release of the last sync (issue 31), on the lab, with moto as EC2
and SSM. `archfleet spot up` (user_data: true) publishes release R1 (a service on image build 1) to SSM and puts the
boot script, which holds no release, into the launch template; a reset lab host plays the instance and the
cloud-init stand-in runs that user-data: it runs R1. The fleet file moves the service to build 2 and `archfleet
sync` rolls it out and publishes R2 (a second sync changes nothing and publishes nothing). An interruption: a
metadata notice, the watcher stops the service, EC2 (the test server's fleet upkeep) replaces the instance, and the
replacement, booted by the stand-in from what EC2 hands it, runs R2: build 2's digest, read by `docker inspect` on
it. Then the fleet goes back to build 1 by a sync (R3), forward to build 2 (R4), and `archfleet rollback` takes the
service back to build 1 from the instance's release records (R5, the rollback's own run): the next replacement runs
build 1 again. `spot status` shows the release each instance booted and the current one; `verify` flags an instance
that runs another release than the current one (after `spot up` published a release its hosts do not run yet); R1's
parameters are pruned once neither the current release, the one it replaced, nor a live instance names it. The
interruption timeline after the release change is printed as a table.

Stand-ins: tests/standins/cloud_init.py (cloud-init's first boot, the metadata service with the role's credentials
and the instance id, a relay to the test server), `lab reset` for a fresh VM. Real: the boot script, curl's SigV4
calls to SSM and EC2 (CreateTags), moto's SSM parameters, Docker, the lab registry, the watcher, archfleet.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from archfleet.lab.state import LabHost, LabState, load, state_dir
from archfleet.placement import container_name
from archfleet.table import format_table
from tests.lab.support import PROJECT, archfleet, on_host, stop_times
from tests.lab.test_services import MOVER, publish_mover
from tests.lab.test_spot_user_data import watcher_saw_notice
from tests.spot.conftest import REGION, Endpoint, endpoint  # noqa: F401  (endpoint: the moto fixture)
from tests.spot.test_fleet_on_moto import X86_FILTER
from tests.standins.cloud_init import RoleMetadataStandIn, boot_fleet_instance, instance_services

pytestmark = pytest.mark.lab

NAME = "release-lab"
PREFIX = f"/archfleet/{NAME}"
SERVICE = "spot-app"
BUILDS = {"1": "spot-release-1", "2": "spot-release-2", "bad": "spot-release-bad"}  # build -> mover image tag
CONTAINER = container_name(SERVICE)
COMMAND = "trap 'exit 0' TERM; sleep infinity & wait"
TOKEN = "release-secret-9f8e7d6c5b4a"
PUBLISHED = re.compile(r"publish release (\S+) ")


def fleet_text(moto: Endpoint, registry: str, build: str, known_hosts: Path, secret: Path) -> str:
    return f"""\
registry: {{lab: true}}
inventory: {PROJECT / "inventories" / "ec2.py"}
ssh: {{user: root, key_file: {state_dir() / "ssh" / "id_ed25519"}, known_hosts: {known_hosts}}}
services:
  {SERVICE}:
    image: {registry}/{MOVER}:{BUILDS[build]}
    groups: [spot]
    command: [sh, -c, "{COMMAND}"]
    healthcheck: {{command: "[ \\"$MOVER_BUILD\\" != spot-bad ]", interval: 1, retries: 3}}
    secrets:
      token: {{file: {secret}, mount: /run/secrets/token}}
spot_fleets:
  {NAME}:
    target_capacity: 1
    instance_types: [t3.small]
    ami:
      amd64: {X86_FILTER}
    key_pair: {moto.key_pair}
    security_groups: [{moto.security_group}]
    subnets: [{moto.subnets[0]}]
    user_data: true
    instance_profile: archfleet-release
"""


@dataclass
class Released:
    moto: Endpoint
    lab: LabState
    host: LabHost
    folder: Path
    env: dict[str, str]
    metadata: RoleMetadataStandIn
    digests: dict[str, str]  # build -> the amd64 image's digest
    instance_id: str = ""
    releases: list[str] = field(default_factory=list)  # published, in order

    @property
    def path(self) -> Path:
        return self.folder / "fleet.yaml"

    def write(self, build: str) -> None:
        self.path.write_text(fleet_text(self.moto, self.lab.registry.address, build, self.folder / "known_hosts",
                                        self.folder / "token"))

    def archfleet(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(PROJECT / ".venv/bin/archfleet"), *args, "-f", str(self.path)], cwd=PROJECT,
                              env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def published(self, result: subprocess.CompletedProcess[str]) -> str | None:
        found = PUBLISHED.findall(result.stderr)
        assert len(found) <= 1, result.stderr
        if found:
            self.releases.append(found[0])
        return found[0] if found else None

    def status(self) -> dict[str, Any]:
        result = self.archfleet("spot", "status", NAME, "--json")
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout)["spot_fleets"][0])

    def running_digest(self) -> tuple[str, str]:
        """The running container's image on the instance, by `docker inspect`: its repo digest, and the digest
        archfleet's label says it pinned."""
        container = on_host(self.host, f"docker inspect -f '{{{{.State.Status}}}} {{{{.Image}}}} "
                                       f"{{{{index .Config.Labels \"archfleet.digest\"}}}}' {CONTAINER}")
        assert container.returncode == 0, container.stderr
        status, image, label = container.stdout.split()
        assert status == "running", container.stdout
        repo = on_host(self.host, f"docker image inspect -f '{{{{json .RepoDigests}}}}' {image}")
        assert repo.returncode == 0, repo.stderr
        return str(json.loads(repo.stdout)[0].rsplit("@", 1)[1]), label

    def parameters(self) -> dict[str, str]:
        ssm = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=REGION).client("ssm", endpoint_url=self.moto.url)
        found = {}
        for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=PREFIX, Recursive=True):
            found.update({p["Name"]: p["Value"] for p in page["Parameters"]})
        return found


def clear_host(host: LabHost) -> None:
    on_host(host, f"docker rm -f {CONTAINER} {CONTAINER}-previous >/dev/null 2>&1; "
                  "/etc/init.d/archfleet-spot-watcher stop >/dev/null 2>&1; "
                  "update-rc.d -f archfleet-spot-watcher remove >/dev/null 2>&1; "
                  "rm -rf /etc/init.d/archfleet-spot-watcher /usr/local/sbin/archfleet-spot-watcher /etc/archfleet "
                  "/var/lib/archfleet/spot /var/log/archfleet-spot-watcher.log /var/lib/cloud")


def image_digest(lab: LabState, tag: str) -> str:
    """The amd64 image's digest under a multi-arch tag, as the registry says (skopeo would say the same)."""
    out = subprocess.run(["docker", "manifest", "inspect", f"{lab.registry.address}/{MOVER}:{tag}"],
                         capture_output=True, text=True, check=True)
    manifests = json.loads(out.stdout)["manifests"]
    return str(next(m["digest"] for m in manifests if m["platform"]["architecture"] == "amd64"))


@pytest.fixture(scope="module")
def released(lab: LabState, endpoint: Endpoint,  # noqa: F811
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    if not lab.hosts_of("spot"):
        archfleet("lab", "up", "--spot", "1", check=True)
        lab = load()
    host = lab.hosts_of("spot")[0]
    for build, tag in BUILDS.items():
        publish_mover(lab, f"spot-{build}", tag, ("amd64",))
    digests = {build: image_digest(lab, tag) for build, tag in BUILDS.items()}
    folder = tmp_path_factory.mktemp("release")
    (folder / "token").write_text(TOKEN)
    (folder / "token").chmod(0o600)
    with instance_services(lab.gateway, endpoint.url, endpoint.env, NAME) as (metadata, env):
        fleet = Released(endpoint, lab, host, folder, env, metadata, digests)
        fleet.write("1")
        try:
            yield fleet
        finally:
            clear_host(host)
            fleet.archfleet("spot", "down", NAME)


def boot_instance(fleet: Released) -> dict[str, float]:
    """A fresh lab host plays the fleet's running instance; the cloud-init stand-in runs the user-data EC2 hands
    it. When it was fresh and when it had booted (epoch seconds)."""
    booted = boot_fleet_instance(fleet.moto.ec2, NAME, fleet.host, fleet.folder / "known_hosts", fleet.metadata)
    fleet.instance_id = booted.instance_id
    assert TOKEN not in booted.script and "spot-release" not in booted.script  # read at boot, not carried
    assert TOKEN not in booted.boot.output, booted.boot.output[-4000:]
    return {"fresh": booted.fresh, "booted": booted.booted}


def interrupt(fleet: Released) -> list[tuple[str, float]]:
    """A spot notice (the watcher stops the service), then EC2 reclaims the instance and the fleet launches a
    replacement. Marks of what happened when."""
    notice = time.time()
    fleet.metadata.instance_action = {"action": "terminate", "time": (
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        while True:
            stopped = stop_times(fleet.host, [CONTAINER]).get(CONTAINER)
            if stopped is not None:
                break
            assert time.time() - notice < 60, "the service still runs 60 s after the notice"
            time.sleep(0.5)
    finally:
        fleet.metadata.instance_action = None
    marks = [("notice posted (metadata stand-in)", notice), ("spot watcher saw it", watcher_saw_notice(fleet.host)),
             (f"{SERVICE} stopped by the watcher", stopped)]
    old = fleet.instance_id
    fleet.moto.ec2.terminate_instances(InstanceIds=[old])
    deadline = time.monotonic() + 120
    while not [i for i in fleet.status()["instances"] if i["state"] == "running" and i["id"] != old and i["fleet"]]:
        assert time.monotonic() < deadline, "no replacement within 120 s"
        time.sleep(1)
    marks.append(("replacement running (EC2 test server)", time.time()))
    return marks


def assert_runs(fleet: Released, build: str, booted: str, current: str | None = None) -> None:
    """The instance runs ``build`` by digest (docker inspect) and booted ``booted``; the current release is
    ``current`` (default: the one it booted), as `spot status` says."""
    repo_digest, label = fleet.running_digest()
    assert repo_digest == label == fleet.digests[build], (repo_digest, label, fleet.digests)
    state = fleet.status()
    assert state["current_release"] == (current or booted), state
    assert {i["id"]: i["release"] for i in state["instances"] if i["state"] == "running"} == {
        fleet.instance_id: booted}, state
    assert on_host(fleet.host, "cat /var/lib/archfleet/spot/release").stdout == f"{booted}\n"


def timeline(marks: list[tuple[str, float]]) -> str:
    """Each step's time since the first (the sync's start) and since the step before, in the order they happened."""
    ordered = sorted(marks, key=lambda mark: mark[1])
    rows = [(step, f"{at - ordered[0][1]:.1f}", f"{at - ordered[max(i - 1, 0)][1]:.1f}")
            for i, (step, at) in enumerate(ordered)]
    return format_table(["step", "since the sync started (s)", "step (s)"], rows)


def verify_rows(fleet: Released) -> tuple[int, list[dict[str, Any]]]:
    proof = fleet.archfleet("verify", "--json")
    return proof.returncode, json.loads(proof.stdout)["rows"]


def test_replacements_boot_the_last_synced_release_and_the_rolled_back_one(released: Released) -> None:
    fleet = released
    up = fleet.archfleet("spot", "up", NAME, "--wait", "60")
    assert up.returncode == 0, up.stderr[-3000:]
    first = fleet.published(up)
    assert first is not None, up.stderr
    boot_instance(fleet)
    assert_runs(fleet, "1", first)
    assert fleet.metadata.credential_reads >= 1

    # No secret in any String parameter (the release's script, unpacked): only in its SecureString.
    parameters = fleet.parameters()
    parts = int(parameters[f"{PREFIX}/releases/{first}/amd64/head"].split()[1])
    packed = "".join(parameters[f"{PREFIX}/releases/{first}/amd64/{i}"] for i in range(parts))
    script = gzip.decompress(base64.b64decode(packed)).decode()
    assert fleet.digests["1"] in script and f"ssm_get {PREFIX}/amd64/services/{SERVICE}/" in script
    assert TOKEN not in script and base64.b64encode(TOKEN.encode()).decode() not in script
    assert all(TOKEN not in value for value in parameters.values())

    # A new release, synced: published after its rollout stood; a second sync changes and publishes nothing.
    fleet.write("2")
    sync_started = time.time()
    synced = fleet.archfleet("sync")
    sync_done = time.time()
    assert synced.returncode == 0, synced.stdout + synced.stderr[-3000:]
    assert f"sync\t{fleet.instance_id}\tupdated" in synced.stdout, synced.stdout
    second = fleet.published(synced)
    assert second is not None and second != first, synced.stderr
    assert f"sync: spot fleet {NAME}: publish release {second} (amd64: {SERVICE} " in synced.stderr
    again = fleet.archfleet("sync")
    assert again.returncode == 0 and f"sync\t{fleet.instance_id}\tno changes" in again.stdout, again.stdout
    assert fleet.published(again) is None, again.stderr
    assert_runs(fleet, "2", first, second)  # the instance runs build 2 now; it booted R1
    code, rows = verify_rows(fleet)
    assert code == 0 and all(r["verdict"] == "ok" for r in rows), rows

    # The interruption: the replacement boots R2.
    marks = [("sync started (build 2)", sync_started), ("sync done, release published", sync_done),
             *interrupt(fleet)]
    booted = boot_instance(fleet)
    assert_runs(fleet, "2", second)
    code, rows = verify_rows(fleet)
    assert code == 0 and all(r["verdict"] == "ok" for r in rows), rows
    marks += [("replacement fresh (lab reset, for a new VM)", booted["fresh"]),
              ("replacement booted from user-data (cloud-init stand-in)", booted["booted"]),
              (f"release {second} served (docker inspect, spot status, verify)", time.time())]
    print("\ninterruption timeline after a release change (seconds):\n" + timeline(marks))

    # Back to build 1 (a sync back to the earlier image): R3; R1 goes (neither current, replaced, nor booted).
    fleet.write("1")
    back = fleet.archfleet("sync")
    assert back.returncode == 0 and f"sync\t{fleet.instance_id}\tupdated" in back.stdout, back.stdout + back.stderr
    third = fleet.published(back)
    assert third is not None and third not in (first, second), back.stderr
    assert f"delete release {first} (no instance booted it, not current)" in back.stderr, back.stderr
    names = fleet.parameters()
    assert not [n for n in names if n.startswith(f"{PREFIX}/releases/{first}/")], names
    assert [n for n in names if n.startswith(f"{PREFIX}/releases/{second}/")], names  # the one it replaced
    assert names[f"{PREFIX}/release/current"] == third

    # Forward to build 2 again (R4), then `archfleet rollback` (R5: build 1, from the host's release records);
    # the next replacement runs the rolled-back release.
    fleet.write("2")
    forward = fleet.archfleet("sync")
    assert forward.returncode == 0 and f"sync\t{fleet.instance_id}\tupdated" in forward.stdout, forward.stdout
    assert fleet.published(forward) is not None, forward.stderr
    rolled = fleet.archfleet("rollback", SERVICE)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr[-3000:]
    rolled_back = fleet.published(rolled)
    assert rolled_back is not None, rolled.stderr
    assert json.loads(fleet.parameters()[f"{PREFIX}/releases/{rolled_back}/manifest"])["command"] == (
        f"rollback {SERVICE} to {third}")
    assert_runs(fleet, "1", second, rolled_back)
    interrupt(fleet)
    boot_instance(fleet)
    assert_runs(fleet, "1", rolled_back)

    # `spot up` publishes build 2 while the instance runs build 1: verify flags it, status says old; a sync
    # brings it to the current release, which it does not publish again.
    up = fleet.archfleet("spot", "up", NAME, "--wait", "60")
    assert up.returncode == 0, up.stderr[-3000:]
    by_spot_up = fleet.published(up)
    assert by_spot_up is not None, up.stderr
    status = fleet.archfleet("spot", "status", NAME)
    assert re.search(rf"{fleet.instance_id} .* {rolled_back}\s+old", status.stdout), status.stdout
    assert f"# {NAME}: current release {by_spot_up} (spot up by " in status.stdout, status.stdout
    code, rows = verify_rows(fleet)
    flagged = [r for r in rows if r["service"] == "(release)"]
    assert code == 1 and [r["host"] for r in flagged] == [fleet.instance_id], rows
    assert f"runs another release than spot fleet {NAME}'s current {by_spot_up}" in flagged[0]["reason"], flagged
    synced = fleet.archfleet("sync")
    assert synced.returncode == 0 and f"sync\t{fleet.instance_id}\tupdated" in synced.stdout, synced.stdout
    assert fleet.published(synced) is None and f"release {by_spot_up} stays current" in synced.stderr, synced.stderr
    code, rows = verify_rows(fleet)
    assert code == 0, rows

    # A release whose health check fails is rolled back on the canary (the one instance): nothing is published.
    fleet.write("bad")
    failed = fleet.archfleet("sync")
    assert failed.returncode == 1, failed.stdout + failed.stderr[-3000:]
    assert fleet.published(failed) is None, failed.stderr
    assert f"sync: spot fleet {NAME}: no release published (the sync failed or rolled back somewhere)" in (
        failed.stderr), failed.stderr
    assert fleet.parameters()[f"{PREFIX}/release/current"] == by_spot_up
    assert fleet.running_digest()[0] == fleet.digests["2"]  # the rollout put the release back
