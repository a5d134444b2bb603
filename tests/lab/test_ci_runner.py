"""End to end on the lab: the CI runner. A buildbot master on one host, a runner (worker) on each architecture;
a change sent to the master builds on every runner, and each reports its own machine."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from archfleet.lab.state import LabState
from archfleet.services.ci import BUILD_RESULTS, send_change_script
from tests.lab.support import LAB_INVENTORY, PROJECT, archfleet, on_host, pyinfra

pytestmark = pytest.mark.lab

FLEET = """\
registry: {{lab: true}}
inventory: {inventory}
images:
  debian:
    local_image: archfleet-lab/debian:bookworm-{{arch}}
    repository: archfleet/debian
    tag: bookworm
  buildbot-worker:
    context: {project}/images/buildbot-worker
    build_args: {{BASE_IMAGE: "{{registry}}/archfleet/debian:bookworm"}}
    repository: archfleet/buildbot-worker
    tag: "3.7"
  buildbot-master:
    context: {project}/images/buildbot-master
    platforms: [linux/amd64]
    build_args: {{BASE_IMAGE: "{{registry}}/archfleet/debian:bookworm"}}
    repository: archfleet/buildbot-master
    tag: "3.7"
services:
  ci-master:
    image: buildbot-master
    hosts: [{master}]
    ports: [9989]
    files:
      - {{template: {project}/deploys/templates/buildbot/master.cfg.j2, mount: /var/lib/buildbot/master/master.cfg}}
    vars: {{runner_service: ci-runner, pb_port: 9989}}
    secrets: {{worker_password: {{file: worker-password, generate: token}}}}
    volumes: ["/var/lib/archfleet/test-ci-master:/var/lib/buildbot/master/state"]
    healthcheck: {{command: "bash -c 'echo > /dev/tcp/127.0.0.1/9989'", interval: 2, retries: 40}}
    stop_order: 80
  ci-runner:
    image: buildbot-worker
    groups: [amd64, arm64]
    environment:
      BUILDBOT_MASTER: "{{{{ hosts[service_hosts['ci-master'][0]].address }}}}:9989"
      BUILDBOT_WORKER_NAME: "{{{{ host.name }}}}"
    secrets:
      worker_password: {{file: worker-password, generate: token, mount: /run/secrets/buildbot-worker-password}}
    stop_order: 10
"""


def in_master(lab: LabState, script: str) -> subprocess.CompletedProcess[str]:
    master = lab.hosts_of("amd64")[0]
    return subprocess.run(
        [*on_host_argv(lab, master.address), "docker exec -i archfleet-ci-master python3 -"],
        input=script, capture_output=True, text=True, timeout=120, check=False,
    )


def on_host_argv(lab: LabState, address: str) -> list[str]:
    return ["ssh", "-i", lab.ssh_key, "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "BatchMode=yes",
            f"{lab.ssh_user}@{address}"]


@pytest.fixture(scope="module")
def ci_fleet(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("ci")
    path = directory / "fleet.yaml"
    path.write_text(FLEET.format(inventory=LAB_INVENTORY, project=PROJECT, master=lab.hosts_of("amd64")[0].name))
    bootstrap = pyinfra("deploys/host.py", "--limit", "amd64", "--limit", "arm64")
    assert bootstrap.returncode == 0, bootstrap.output[-3000:]
    archfleet("images", "build", "-f", str(path), check=True)
    yield path
    empty = directory / "empty.yaml"
    empty.write_text(f"registry: {{lab: true}}\ninventory: {LAB_INVENTORY}\n")
    archfleet("sync", "-f", str(empty))
    on_host(lab.hosts_of("amd64")[0], "rm -rf /var/lib/archfleet/test-ci-master")


def test_a_change_builds_on_every_runner_each_on_its_own_machine(ci_fleet: Path, lab: LabState) -> None:
    first = archfleet("sync", "-f", str(ci_fleet))
    assert first.returncode == 0, first.stderr[-3000:]
    assert archfleet("sync", "-f", str(ci_fleet)).stdout.count("no changes") >= 2

    revision = f"test-{time.time_ns()}"
    expected = {f"uname-{h.name}": "aarch64" if h.arch == "arm64" else "x86_64"
                for h in lab.hosts_of("amd64") + lab.hosts_of("arm64")}
    deadline = time.monotonic() + 180
    sent = False
    results: list[list[object]] = []
    while time.monotonic() < deadline:
        if not sent:
            # The runners connect a few seconds after the master is up; a change sent before they do still builds.
            sent = in_master(lab, send_change_script(revision)).stdout.strip() == "sent"
        else:
            results = json.loads(in_master(lab, BUILD_RESULTS).stdout or "[]")
            if {name for name, *_ in results} >= set(expected):
                break
        time.sleep(2)
    assert sent, "the master did not take the change"
    machines = {name: machine for name, _, outcome, machine in results if outcome == 0}
    assert machines == expected, results
