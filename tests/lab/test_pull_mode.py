"""End to end: a `converge: pull` spot fleet's instance converges itself (issue 31), on the lab, with moto as EC2 and
SSM. The controller's hosts are the lab's amd64 host (push: `archfleet sync` reaches it over SSH); the pull fleet's
one instance is the lab's spot host, booted by the cloud-init stand-in from its launch template's user-data, which
installs the pull agent (no systemd on the lab hosts: the init script looping with sleep, `pull_interval: 5`).

A sync moves the service to build 2 on the push host (its canary) and publishes the pull fleet's release; the
instance's agent converges to it (build 2's digest by `docker inspect`) within a few intervals, and meanwhile the
controller opened no SSH connection to it (its sshd log between the sync's start and the convergence: no
`Accepted` line; the push host's log in the same window has some, so the count counts). A second sync changes
nothing and the instance keeps its container. A release whose health check fails on the push host is rolled back
there and not published: the instance keeps running build 2 (the same container id) and release/current stays.

Stand-ins: tests/standins/cloud_init.py (first boot, metadata with the role's credentials), `lab reset` for a fresh
VM. Real: the boot script and the agent, curl's SigV4 calls to SSM and EC2 (CreateTags), moto's SSM parameters,
Docker, the lab registry, archfleet.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from archfleet.lab.state import LabHost, LabState, load, state_dir
from archfleet.placement import container_name
from tests.lab.support import PROJECT, HostBootstrap, archfleet, on_host
from tests.lab.test_services import MOVER, publish_mover
from tests.lab.test_spot_release import PUBLISHED, image_digest
from tests.spot.conftest import REGION, Endpoint, endpoint  # noqa: F401  (endpoint: the moto fixture)
from tests.spot.test_fleet_on_moto import X86_FILTER
from tests.standins.cloud_init import RoleMetadataStandIn, boot_fleet_instance, instance_services

pytestmark = pytest.mark.lab

NAME = "pull-lab"
PREFIX = f"/archfleet/{NAME}"
SERVICE = "pull-app"
BUILDS = {"1": "pull-mode-1", "2": "pull-mode-2", "bad": "pull-mode-bad"}  # build -> mover image tag
CONTAINER = container_name(SERVICE)
COMMAND = "trap 'exit 0' TERM; sleep infinity & wait"
INTERVAL = 5
AGENT = "archfleet-pull-agent"

INVENTORY = """\
import os

from archfleet.lab.inventory import lab_groups
from archfleet.spot.discovery import ec2_inventory

# The controller's own hosts (the lab's amd64 host) and the pull fleet's instances (EC2), one group by architecture.
amd64 = lab_groups()["amd64"] + ec2_inventory(dict(os.environ))["amd64"]
"""


def fleet_text(moto: Endpoint, registry: str, build: str, folder: Path) -> str:
    return f"""\
registry: {{lab: true}}
inventory: {folder / "inventory.py"}
ssh: {{user: root, key_file: {state_dir() / "ssh" / "id_ed25519"}, known_hosts: {folder / "known_hosts"}}}
services:
  {SERVICE}:
    image: {registry}/{MOVER}:{BUILDS[build]}
    groups: [amd64]
    command: [sh, -c, "{COMMAND}"]
    healthcheck: {{command: "[ \\"$MOVER_BUILD\\" != pull-bad ]", interval: 1, retries: 3}}
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
    instance_profile: archfleet-pull
    converge: pull
    pull_interval: {INTERVAL}
"""


@dataclass
class Pulling:
    moto: Endpoint
    lab: LabState
    push: LabHost  # reached by the controller
    host: LabHost  # plays the pull fleet's instance
    folder: Path
    env: dict[str, str]
    metadata: RoleMetadataStandIn
    digests: dict[str, str]  # build -> the amd64 image's digest
    instance_id: str = ""

    def write(self, build: str) -> None:
        (self.folder / "fleet.yaml").write_text(fleet_text(self.moto, self.lab.registry.address, build, self.folder))

    def archfleet(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(PROJECT / ".venv/bin/archfleet"), *args, "-f", str(self.folder / "fleet.yaml")],
                              cwd=PROJECT, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def current(self) -> str:
        ssm = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=REGION).client("ssm", endpoint_url=self.moto.url)
        return str(ssm.get_parameter(Name=f"{PREFIX}/release/current")["Parameter"]["Value"])

    def instance(self) -> dict[str, Any]:
        """The instance as `spot status --json` says (EC2's tags: no SSH)."""
        result = self.archfleet("spot", "status", NAME, "--json")
        assert result.returncode == 0, result.stderr
        fleet = json.loads(result.stdout)["spot_fleets"][0]
        return dict(next(i for i in fleet["instances"] if i["id"] == self.instance_id))


def running(host: LabHost) -> tuple[str, str]:
    """The service's container on ``host``: its id and its image's repo digest (docker inspect)."""
    container = on_host(host, f"docker inspect -f '{{{{.State.Status}}}} {{{{.Id}}}} {{{{.Image}}}}' {CONTAINER}")
    assert container.returncode == 0, container.stderr
    status, container_id, image = container.stdout.split()
    assert status == "running", container.stdout
    repo = on_host(host, f"docker image inspect -f '{{{{json .RepoDigests}}}}' {image}")
    assert repo.returncode == 0, repo.stderr
    return container_id, str(json.loads(repo.stdout)[0].rsplit("@", 1)[1])


def ssh_logins(host: LabHost, since: float, until: float) -> int:
    """SSH logins to ``host`` in [since, until] (epoch seconds), from its sshd's log (sshd -e: the container's)."""
    log = subprocess.run(["docker", "logs", "--since", f"{since:.3f}", "--until", f"{until:.3f}", host.container],
                         capture_output=True, text=True, check=True)
    return sum("Accepted publickey for" in line for line in (log.stdout + log.stderr).splitlines())


def clear_hosts(fleet: Pulling) -> None:
    on_host(fleet.host, f"/etc/init.d/{AGENT} stop >/dev/null 2>&1; update-rc.d -f {AGENT} remove >/dev/null 2>&1; "
                        f"docker rm -f {CONTAINER} {CONTAINER}-previous >/dev/null 2>&1; "
                        "/etc/init.d/archfleet-spot-watcher stop >/dev/null 2>&1; "
                        "update-rc.d -f archfleet-spot-watcher remove >/dev/null 2>&1; "
                        f"rm -rf /etc/init.d/{AGENT} /usr/local/sbin/{AGENT}* /var/log/{AGENT}.log "
                        "/etc/init.d/archfleet-spot-watcher /usr/local/sbin/archfleet-spot-watcher /etc/archfleet "
                        "/var/lib/archfleet/spot /var/log/archfleet-spot-watcher.log /var/lib/cloud")
    on_host(fleet.push, f"docker rm -f {CONTAINER} {CONTAINER}-previous >/dev/null 2>&1")


@pytest.fixture(scope="module")
def pulling(lab: LabState, endpoint: Endpoint, host_bootstrap: HostBootstrap,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pulling]:
    if not lab.hosts_of("spot"):
        archfleet("lab", "up", "--spot", "1", check=True)
        lab = load()
    host_bootstrap.ensure()  # the push host's engine, registry trust and login
    for build, tag in BUILDS.items():
        publish_mover(lab, f"pull-{build}", tag, ("amd64",))
    digests = {build: image_digest(lab, tag) for build, tag in BUILDS.items()}
    folder = tmp_path_factory.mktemp("pull")
    (folder / "inventory.py").write_text(INVENTORY)
    with instance_services(lab.gateway, endpoint.url, endpoint.env, NAME) as (metadata, env):
        fleet = Pulling(endpoint, lab, lab.hosts_of("amd64")[0], lab.hosts_of("spot")[0], folder, env, metadata,
                        digests)
        fleet.write("1")
        try:
            yield fleet
        finally:
            clear_hosts(fleet)
            fleet.archfleet("spot", "down", NAME)


def wait_for_converge(fleet: Pulling, release: str, timeout: float) -> tuple[float, dict[str, Any]]:
    """Until the instance's tags say it applied ``release`` (``spot status``: EC2 only); when, and the instance."""
    deadline = time.monotonic() + timeout
    while True:
        instance = fleet.instance()
        if instance["release"] == release and str(instance.get("last_converge") or "").startswith(f"{release} "):
            return time.time(), instance
        assert time.monotonic() < deadline, f"not converged to {release} within {timeout:.0f} s: {instance}"
        time.sleep(1)


def test_a_pull_host_converges_without_ssh_and_refuses_a_release_the_canary_failed(pulling: Pulling) -> None:
    fleet = pulling
    up = fleet.archfleet("spot", "up", NAME, "--wait", "60")
    assert up.returncode == 0, up.stderr[-3000:]
    first = PUBLISHED.findall(up.stderr)[0]
    booted = boot_fleet_instance(fleet.moto.ec2, NAME, fleet.host, fleet.folder / "known_hosts", fleet.metadata)
    fleet.instance_id = booted.instance_id
    assert f"archfleet-boot: the pull agent, every {INTERVAL} s" in booted.boot.output, booted.boot.output[-4000:]
    assert on_host(fleet.host, f"/etc/init.d/{AGENT} status").returncode == 0
    booted_id, digest = running(fleet.host)
    assert digest == fleet.digests["1"]

    # The push host to build 1: nothing new for the pull fleet (its release is build 1 already).
    synced = fleet.archfleet("sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr[-3000:]
    assert f"sync: spot fleet {NAME}: 1 pull-mode host(s) converge themselves" in synced.stderr, synced.stderr
    assert fleet.instance_id not in synced.stdout, synced.stdout  # not in the sync's report: not reached
    assert fleet.current() == first

    # Build 2: the sync reaches the push host (the canary), then publishes; the agent converges, with no SSH.
    fleet.write("2")
    started = time.time()
    synced = fleet.archfleet("sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr[-3000:]
    assert f"sync\t{fleet.push.name}\tupdated" in synced.stdout and fleet.instance_id not in synced.stdout
    second = PUBLISHED.findall(synced.stderr)[0]
    assert second != first and fleet.current() == second
    assert f"sync: spot fleet {NAME}: its pull-mode hosts converge themselves to release {second}" in synced.stderr
    converged, instance = wait_for_converge(fleet, second, timeout=INTERVAL * 6 + 120)
    assert instance["last_converge"].endswith(" ok"), instance
    took = converged - started
    assert ssh_logins(fleet.host, started, converged) == 0
    assert ssh_logins(fleet.push, started, converged) >= 1  # the count counts: the sync's own logins
    print(f"\npull host converged {took:.1f} s after the sync started (interval {INTERVAL} s)")
    converged_id, digest = running(fleet.host)
    assert digest == fleet.digests["2"] and converged_id != booted_id
    assert running(fleet.push)[1] == fleet.digests["2"]
    assert on_host(fleet.host, "cat /var/lib/archfleet/spot/release").stdout == f"{second}\n"
    status = fleet.archfleet("spot", "status", NAME)
    assert f"# {fleet.instance_id}: pull mode, last converge: {second} " in status.stdout, status.stdout

    # Again: nothing changes, nothing is published, the instance keeps its container.
    again = fleet.archfleet("sync")
    assert again.returncode == 0 and f"sync\t{fleet.push.name}\tno changes" in again.stdout, again.stdout
    assert not PUBLISHED.findall(again.stderr), again.stderr
    time.sleep(INTERVAL * 2 + 2)
    assert running(fleet.host)[0] == converged_id

    # A release whose health check fails on the canary: rolled back there, never published, never applied here.
    fleet.write("bad")
    failed = fleet.archfleet("sync")
    assert failed.returncode == 1, failed.stdout + failed.stderr[-3000:]
    assert not PUBLISHED.findall(failed.stderr), failed.stderr
    assert f"sync: spot fleet {NAME}: no release published for its pull-mode hosts" in failed.stderr, failed.stderr
    assert fleet.current() == second
    time.sleep(INTERVAL * 3 + 2)
    assert running(fleet.host) == (converged_id, fleet.digests["2"])
    assert running(fleet.push)[1] == fleet.digests["2"]  # the rollout put the push host back
    assert fleet.instance()["last_converge"].startswith(f"{second} ")

    # `spot up` publishes the fleet file's release itself (the operator's, no canary): the bad build reaches the
    # instance, fails its health check there, and the agent records it; the previous container runs on.
    up = fleet.archfleet("spot", "up", NAME, "--wait", "60")
    assert up.returncode == 0, up.stderr[-3000:]
    bad = PUBLISHED.findall(up.stderr)[0]
    deadline = time.monotonic() + INTERVAL * 6 + 120
    while not str(fleet.instance().get("last_converge") or "").startswith(f"{bad} "):
        assert time.monotonic() < deadline, fleet.instance()
        time.sleep(1)
    instance = fleet.instance()
    assert " failed: " in instance["last_converge"] and instance["release"] == second, instance
    assert running(fleet.host) == (converged_id, fleet.digests["2"])
    assert on_host(fleet.host, "cat /var/lib/archfleet/spot/release").stdout == f"{second}\n"
    print(f"a release failing on the pull host: {instance['last_converge']}")
