"""Every `archfleet sync` plans from what it reads now: the fleet file and everything it reaches (inventory, templates,
secret files, the environment), every host and every tag. Four inputs that a remembered verdict keyed on file
stats and the environment's `ARCHFLEET_*` variables did not see (issue 28); each case runs a no-op sync first, so
that a sync that remembered would have had a verdict to replay:

- an inventory that lists a folder: a host added to the folder is served by the next plain sync;
- a file a template includes only on `linux/arm64`: changing it recreates the service on the arm64 host alone;
- an inventory that reads an environment variable: a host the variable adds is served;
- a secret file readable by every user is refused (exit 2) by every sync, not only the first.

One small service (`probe`: the lab's Debian base, `sleep infinity`, a template and a secret) on the lab's amd64 and
arm64 hosts; each test leaves the hosts without it, whatever happened (its fixture's teardown).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from archfleet.lab.inventory import host_data
from archfleet.lab.state import LabState
from tests.lab.support import (
    PROJECT_IMAGES,
    HostBootstrap,
    archfleet,
    on_host,
    remove_every_service,
)

pytestmark = pytest.mark.lab

TEMPLATE = ('greeting = hello from {{ host.name }}\n'
            '{% if host.platform == "linux/arm64" %}{% include "arm64-extra.txt" %}{% endif %}\n')
SERVICE = """\
services:
  probe:
    image: debian
    groups: [probed]
    command: [sleep, infinity]
    files: [{template: probe.conf.j2, mount: /etc/probe.conf}]
    secrets: {token: {file: probe-token, generate: token}}
"""


class ProbeFleet:
    """A fleet file of the `probe` service, in its own folder, over an inventory ``inventory.py`` the test writes."""

    def __init__(self, directory: Path, lab: LabState):
        self.directory, self.lab = directory, lab
        (directory / "probe.conf.j2").write_text(TEMPLATE)
        (directory / "arm64-extra.txt").write_text("extra = 1\n")
        self.path = directory / "fleet.yaml"
        self.path.write_text("registry: {lab: true}\ninventory: inventory.py\nimages:\n"
                             + PROJECT_IMAGES["debian"] + SERVICE)
        self.data = {host.name: host_data(lab, host) for arch in ("amd64", "arm64") for host in lab.hosts_of(arch)}
        self.amd64, self.arm64 = lab.hosts_of("amd64")[0].name, lab.hosts_of("arm64")[0].name

    def write_inventory(self, text: str) -> None:
        (self.directory / "inventory.py").write_text(text)

    def sync(self, *args: str, environment: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        saved = {name: os.environ.get(name) for name in environment or {}}
        os.environ.update(environment or {})
        try:
            return archfleet("sync", "-f", str(self.path), *args)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def statuses(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Host -> its report line (`no changes`, `updated: probe (create)`...)."""
    return {line.split("\t")[1]: line.split("\t")[2] for line in result.stdout.splitlines()
            if line.startswith("sync\t")}


def settled(fleet: ProbeFleet, hosts: list[str], environment: dict[str, str] | None = None) -> None:
    """Sync until ``hosts`` run probe, then once more: a no-op (what a sync that remembers would remember)."""
    first = fleet.sync(environment=environment)
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    assert sorted(statuses(first)) == sorted(hosts), first.stdout
    noop = fleet.sync(environment=environment)
    assert noop.returncode == 0, noop.stdout + noop.stderr[-3000:]
    assert statuses(noop) == {host: "no changes" for host in hosts}, noop.stdout


def probe_id(lab: LabState, name: str) -> str:
    host = next(h for arch in ("amd64", "arm64") for h in lab.hosts_of(arch) if h.name == name)
    return on_host(host, "docker inspect --format '{{.Id}}' archfleet-probe 2>/dev/null").stdout.strip()


@pytest.fixture(scope="module")
def published(lab: LabState, host_bootstrap: HostBootstrap, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The hosts bootstrapped and the Debian base published to the lab's registry (the probe's image)."""
    host_bootstrap.ensure()
    fleet = ProbeFleet(tmp_path_factory.mktemp("publish"), lab)
    fleet.write_inventory(f"probed = {list(fleet.data.items())!r}\n")
    archfleet("images", "build", "-f", str(fleet.path), check=True)


@pytest.fixture
def fleet(lab: LabState, published: None, tmp_path: Path) -> Iterator[ProbeFleet]:
    yield ProbeFleet(tmp_path, lab)
    cleared = remove_every_service(tmp_path)
    assert cleared.returncode == 0, cleared.stderr[-3000:]


def test_a_host_added_to_an_inventory_folder_is_served_by_the_next_plain_sync(fleet: ProbeFleet) -> None:
    """The inventory lists a folder (one JSON file of host data per host): the load opens the files it finds, never
    a file that is not there yet."""
    folder = fleet.directory / "hosts.d"
    folder.mkdir()
    fleet.write_inventory("import json\nimport pathlib\n\n"
                          f"probed = [(path.name, json.loads(path.read_text()))\n"
                          f"          for path in sorted(pathlib.Path({str(folder)!r}).iterdir())]\n")
    (folder / fleet.amd64).write_text(json.dumps(fleet.data[fleet.amd64]))
    settled(fleet, [fleet.amd64])
    (folder / fleet.arm64).write_text(json.dumps(fleet.data[fleet.arm64]))
    added = fleet.sync()
    assert added.returncode == 0, added.stdout + added.stderr[-3000:]
    assert statuses(added) == {fleet.amd64: "no changes", fleet.arm64: "updated: probe (create)"}, added.stdout


def test_a_file_included_only_on_arm64_recreates_the_service_on_arm64_alone(fleet: ProbeFleet, lab: LabState) -> None:
    """The template includes arm64-extra.txt for `linux/arm64` hosts only: the load (which knows no host's
    platform) never renders that branch; the sync, which read each host's platform, does."""
    fleet.write_inventory(f"probed = {[(name, fleet.data[name]) for name in (fleet.amd64, fleet.arm64)]!r}\n")
    settled(fleet, [fleet.amd64, fleet.arm64])
    before = {name: probe_id(lab, name) for name in (fleet.amd64, fleet.arm64)}
    (fleet.directory / "arm64-extra.txt").write_text("extra = 2\n")
    planned = fleet.sync("--dry")
    assert planned.returncode == 0, planned.stdout + planned.stderr[-3000:]
    assert statuses(planned) == {fleet.amd64: "no changes", fleet.arm64: "would change: probe (recreate)"}, \
        planned.stdout
    changed = fleet.sync()
    assert changed.returncode == 0, changed.stdout + changed.stderr[-3000:]
    assert statuses(changed) == {fleet.amd64: "no changes", fleet.arm64: "updated: probe (recreate)"}, changed.stdout
    after = {name: probe_id(lab, name) for name in (fleet.amd64, fleet.arm64)}
    assert after[fleet.amd64] == before[fleet.amd64] and after[fleet.arm64] != before[fleet.arm64]
    arm64 = lab.hosts_of("arm64")[0]
    assert "extra = 2" in on_host(arm64, "docker exec archfleet-probe cat /etc/probe.conf").stdout


def test_a_host_added_by_the_environment_an_inventory_reads_is_served(fleet: ProbeFleet) -> None:
    """The inventory names its hosts from PROBE_HOSTS (and reads their data from one file that does not change)."""
    data = fleet.directory / "hosts.json"
    data.write_text(json.dumps(fleet.data))
    fleet.write_inventory("import json\nimport os\n\n"
                          f"_data = json.loads(open({str(data)!r}).read())\n"
                          "probed = [(name, _data[name]) for name in os.environ['PROBE_HOSTS'].split(',')]\n")
    settled(fleet, [fleet.amd64], {"PROBE_HOSTS": fleet.amd64})
    added = fleet.sync(environment={"PROBE_HOSTS": f"{fleet.amd64},{fleet.arm64}"})
    assert added.returncode == 0, added.stdout + added.stderr[-3000:]
    assert statuses(added) == {fleet.amd64: "no changes", fleet.arm64: "updated: probe (create)"}, added.stdout


def test_a_secret_file_readable_by_every_user_is_refused_by_every_sync(fleet: ProbeFleet, lab: LabState) -> None:
    """`chmod 644` on a secret file after a no-op: every sync stops at the load (exit 2, the file named, nothing
    read or changed), the second as the first; `chmod 600` and the sync is a no-op again."""
    fleet.write_inventory(f"probed = {[(fleet.amd64, fleet.data[fleet.amd64])]!r}\n")
    settled(fleet, [fleet.amd64])
    secret = fleet.directory / "probe-token"
    before = probe_id(lab, fleet.amd64)
    secret.chmod(0o644)
    for attempt in ("first", "second"):
        refused = fleet.sync()
        assert refused.returncode == 2, (attempt, refused.stdout, refused.stderr[-3000:])
        assert str(secret) in refused.stderr and "readable by every user" in refused.stderr, refused.stderr
        assert refused.stdout == "", (attempt, refused.stdout)
    assert probe_id(lab, fleet.amd64) == before
    secret.chmod(0o600)
    again = fleet.sync()
    assert again.returncode == 0 and statuses(again) == {fleet.amd64: "no changes"}, again.stdout + again.stderr
