"""End to end on the lab: the CI runner. A buildbot master on one host, a runner (worker) on each architecture;
a change sent to the master builds on every runner, and each reports its own machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from archfleet.lab.ci import build_on_every_runner
from archfleet.lab.state import LabState
from tests.lab.support import PROJECT, HostBootstrap, archfleet, fleet_header, on_host, remove_every_service

pytestmark = pytest.mark.lab

SERVICES = """\
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


@pytest.fixture(scope="module")
def ci_fleet(lab: LabState, tmp_path_factory: pytest.TempPathFactory, host_bootstrap: HostBootstrap) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("ci")
    path = directory / "fleet.yaml"
    services = SERVICES.format(project=PROJECT, master=lab.hosts_of("amd64")[0].name)
    path.write_text(fleet_header("buildbot-worker", "buildbot-master") + services)
    host_bootstrap.ensure()
    archfleet("images", "build", "-f", str(path), check=True)
    yield path
    remove_every_service(directory)
    on_host(lab.hosts_of("amd64")[0], "rm -rf /var/lib/archfleet/test-ci-master")


def test_a_change_builds_on_every_runner_each_on_its_own_machine(ci_fleet: Path, lab: LabState) -> None:
    first = archfleet("sync", "-f", str(ci_fleet))
    assert first.returncode == 0, first.stderr[-3000:]
    second = archfleet("sync", "-f", str(ci_fleet))
    statuses = [line.split("\t")[2] for line in second.stdout.splitlines() if line.startswith("sync\t")]
    assert statuses and all(status == "no changes" for status in statuses), second.stdout

    expected = {f"uname-{h.name}": "aarch64" if h.arch == "arm64" else "x86_64"
                for h in lab.hosts_of("amd64") + lab.hosts_of("arm64")}
    results = build_on_every_runner(lab, lab.hosts_of("amd64")[0].address, set(expected), timeout=180)
    machines = {name: machine for name, _, outcome, machine in results if outcome == 0}
    assert machines == expected, results
