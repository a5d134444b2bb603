"""End to end: a spot instance that joins by itself. `archfleet spot up` (user_data: true) puts the boot script into
the launch template and the secrets into SSM; a lab host freshly reset plays the instance, and the cloud-init
stand-in runs the launch template's user-data at its first boot. Then `archfleet verify` proves its services, and
`archfleet sync` and the host bootstrap find nothing to change. Last, the interruption: a metadata notice, the
services stop in the fleet's order, a replacement instance boots from the same user-data and serves, and
`spot status` shows it; each step is timed and printed.

Stand-ins (tests/standins/cloud_init.py): cloud-init's first boot, the metadata service (IMDSv2 with the instance
role's credentials), and a relay from the lab gateway to the EC2/SSM test server (moto). Real: the boot script,
curl's SigV4 signing, moto's SSM SecureStrings, Docker, the lab registry, the spot watcher, archfleet's commands.
"""

from __future__ import annotations

import base64
import datetime
import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from archfleet.lab.state import LabHost, LabState, load, state_dir
from tests.lab.ec2_lab_address_map import ADDRESS_MODE, map_fleet_to_lab
from tests.lab.support import PROJECT, PROJECT_IMAGES, archfleet, on_host, stop_times
from tests.spot.conftest import Endpoint, endpoint  # noqa: F401  (endpoint: the moto fixture)
from tests.spot.test_fleet_on_moto import X86_FILTER
from tests.standins.cloud_init import Relay, RoleMetadataStandIn, first_boot, launch_template_user_data
from tests.standins.instance_metadata import serve

pytestmark = pytest.mark.lab

NAME = "joins-lab"
SPOT_HOSTS = 2  # the module plays the instances with the lab's second spot host (the first is test_spot_watcher's)
SERVICES = {"boot-runner": 10, "boot-cache": 20}  # lower stop_order stops first
CONTAINER_COMMAND = "trap 'exit 0' TERM; sleep infinity & wait"
TOKEN = "boot-secret-0123456789abcdef"


def fleet_text(moto_endpoint: Endpoint, known_hosts: Path, secret_file: Path) -> str:
    services = "".join(
        f"  {name}:\n    image: debian\n    groups: [spot]\n    command: [sh, -c, \"{CONTAINER_COMMAND}\"]\n"
        f"    stop_order: {order}\n" for name, order in SERVICES.items())
    services += f"    secrets:\n      token: {{file: {secret_file}, mount: /run/secrets/token}}\n"
    return f"""\
registry: {{lab: true}}
inventory: {PROJECT / "inventories" / "ec2.py"}
ssh: {{user: root, key_file: {state_dir() / "ssh" / "id_ed25519"}, known_hosts: {known_hosts}}}
images:
{PROJECT_IMAGES["debian"]}services:
{services}spot_fleets:
  {NAME}:
    target_capacity: 1
    instance_types: [t3.small]
    ami:
      amd64: {X86_FILTER}
    key_pair: {moto_endpoint.key_pair}
    security_groups: [{moto_endpoint.security_group}]
    subnets: [{moto_endpoint.subnets[0]}]
    role: joiners
    user_data: true
    instance_profile: archfleet-joins
"""


@dataclass
class Joining:
    path: Path
    known_hosts: Path
    env: dict[str, str]
    host: LabHost
    metadata: RoleMetadataStandIn
    ec2: object
    instance_id: str = ""
    timeline: dict[str, float] = field(default_factory=dict)

    def archfleet(self, *args: str, timeout: float = 1800, path: Path | None = None
                  ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(PROJECT / ".venv/bin/archfleet"), *args, "-f", str(path or self.path)], cwd=PROJECT,
                              env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def refresh_known_hosts(self) -> None:
        """After a reset the host has a new key: the lab's record of it (so keys are still checked)."""
        shutil.copyfile(state_dir() / "ssh" / "known_hosts", self.known_hosts)
        self.known_hosts.chmod(0o600)


def clear_host(host: LabHost) -> None:
    names = " ".join(f"archfleet-{name}" for name in SERVICES)
    on_host(host, f"docker rm -f {names} >/dev/null 2>&1; /etc/init.d/archfleet-spot-watcher stop >/dev/null 2>&1; "
                  "update-rc.d -f archfleet-spot-watcher remove >/dev/null 2>&1; "
                  "rm -rf /etc/init.d/archfleet-spot-watcher /usr/local/sbin/archfleet-spot-watcher "
                  "/etc/archfleet /var/log/archfleet-spot-watcher.log /var/lib/cloud")


@pytest.fixture(scope="module")
def joining(lab: LabState, endpoint: Endpoint,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Joining]:
    if len(lab.hosts_of("spot")) < SPOT_HOSTS:
        archfleet("lab", "up", "--spot", str(SPOT_HOSTS), check=True)
        lab = load()
    host = lab.hosts_of("spot")[SPOT_HOSTS - 1]
    folder = tmp_path_factory.mktemp("joins")
    secret = folder / "token"
    secret.write_text(TOKEN)
    secret.chmod(0o600)
    path = folder / "fleet.yaml"
    path.write_text(fleet_text(endpoint, folder / "known_hosts", secret))
    metadata = RoleMetadataStandIn()
    server = serve(metadata, lab.gateway)
    moto_port = urllib.parse.urlsplit(endpoint.url).port
    assert moto_port is not None
    relay = Relay(lab.gateway, ("127.0.0.1", moto_port))
    env = {**endpoint.env, "AWS_ENDPOINT_URL": f"http://{relay.address}", "ARCHFLEET_EC2_FLEET": NAME,
           "ARCHFLEET_EC2_ADDRESS": ADDRESS_MODE, "PYTHONUNBUFFERED": "1",
           "ARCHFLEET_EC2_METADATA_URL": f"http://{lab.gateway}:{server.server_address[1]}"}
    fleet = Joining(path, folder / "known_hosts", env, host, metadata, endpoint.ec2)
    fleet.refresh_known_hosts()
    try:
        built = fleet.archfleet("images", "build")
        assert built.returncode == 0, built.stderr[-3000:]
        yield fleet
    finally:
        clear_host(host)
        fleet.archfleet("spot", "down", NAME)
        relay.close()
        server.shutdown()
        server.server_close()


def boot_instance(fleet: Joining) -> float:
    """A fresh lab host plays the fleet's running instance; the cloud-init stand-in runs its user-data. Seconds."""
    played = map_fleet_to_lab(fleet.ec2, NAME, [fleet.host])
    assert len(played) == 1
    fleet.instance_id = played[0].instance_id
    archfleet("lab", "reset", fleet.host.name, check=True)
    fleet.refresh_known_hosts()
    script = launch_template_user_data(fleet.ec2, fleet.instance_id)
    assert TOKEN not in script
    boot = first_boot(fleet.host, script)
    assert boot.returncode == 0, boot.output[-4000:]
    assert "archfleet-boot: joined" in boot.output, boot.output[-4000:]
    assert TOKEN not in boot.output
    return boot.seconds


def sync_statuses(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return {line.split("\t")[1]: line.split("\t")[2] for line in result.stdout.splitlines()
            if line.startswith("sync\t")}


def test_a_host_booted_from_the_user_data_serves_and_the_next_sync_changes_nothing(joining: Joining) -> None:
    up = joining.archfleet("spot", "up", NAME, "--wait", "60")
    assert up.returncode == 0, up.stderr[-3000:]
    seconds = boot_instance(joining)
    print(f"\nfirst boot from user-data: {seconds:.1f}s")
    assert joining.metadata.credential_reads >= 1  # the secrets came through the instance role

    proof = joining.archfleet("verify", "--json")
    assert proof.returncode == 0, proof.stdout + proof.stderr[-3000:]
    rows = json.loads(proof.stdout)["rows"]
    assert {(r["host"], r["service"]) for r in rows} == {(joining.instance_id, s) for s in SERVICES}, rows
    assert all(r["verdict"] == "ok" and r["state"] == "running" for r in rows), rows

    assert sync_statuses(joining.archfleet("sync")) == {joining.instance_id: "no changes"}
    bootstrap = joining.archfleet("hosts", "bootstrap")
    assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr[-3000:]
    assert f"bootstrap\t{joining.instance_id}\tno changes" in bootstrap.stdout, bootstrap.stdout

    # The secret: root-only on the host, read from SSM; never in ps, the user-data file or world-readable files.
    encoded = base64.b64encode(TOKEN.encode()).decode()  # the command line must not hold the token itself
    on = on_host(joining.host, "ls -l /etc/archfleet/services/boot-cache/*/token; ps -eo args; "
                               f"t=$(echo {encoded} | base64 -d); "
                               'grep -rl --exclude-dir=services "$t" /etc /var/lib/cloud /var/log || true')
    assert on.stdout.startswith("-rw------- 1 root root"), on.stdout
    assert TOKEN not in on.stdout.split("\n", 1)[1], on.stdout


def test_an_interruption_then_a_replacement_from_the_user_data_serves(joining: Joining) -> None:
    assert joining.instance_id, "needs the first test's instance"
    expected = [f"archfleet-{name}" for name in sorted(SERVICES, key=SERVICES.__getitem__)]
    notice = time.time()
    joining.metadata.instance_action = {"action": "terminate", "time": (
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        while True:
            times = stop_times(joining.host, expected)
            if times and all(t is not None for t in times.values()):
                break
            assert time.time() - notice < 30, f"still running 30 s after the notice: {times}"
            time.sleep(0.5)
    finally:
        joining.metadata.instance_action = None
    assert sorted(times, key=lambda n: times[n] or 0) == expected, times
    drained = max(t for t in times.values() if t is not None)
    # EC2 reclaims the instance; the maintain fleet launches a replacement from the same launch template.
    old = joining.instance_id
    joining.ec2.terminate_instances(InstanceIds=[old])  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    while True:
        status = joining.archfleet("spot", "status", NAME, "--json")
        assert status.returncode == 0, status.stderr
        running = [i for i in json.loads(status.stdout)["spot_fleets"][0]["instances"]
                   if i["state"] == "running" and i["id"] != old and i["fleet"]]
        if running:
            break
        assert time.monotonic() < deadline, status.stdout
        time.sleep(2)
    replaced = time.time()
    boot_instance(joining)
    assert joining.instance_id == running[0]["id"]
    proof = joining.archfleet("verify", "--json")
    assert proof.returncode == 0, proof.stdout + proof.stderr[-3000:]
    rows = json.loads(proof.stdout)["rows"]
    assert {r["host"] for r in rows} == {joining.instance_id} and all(r["verdict"] == "ok" for r in rows), rows
    serving = time.time()
    status = joining.archfleet("spot", "status", NAME)
    assert joining.instance_id in status.stdout, status.stdout
    print(f"\ninterruption timeline: notice -> drained {drained - notice:.1f}s; "
          f"drained -> replacement running (EC2 test server) {replaced - drained:.1f}s; "
          f"replacement running -> serving (reset, first boot, verify) {serving - replaced:.1f}s; "
          f"total {serving - notice:.1f}s")


def test_spot_up_sync_bootstraps_and_syncs_an_instance_that_came_up_bare(joining: Joining) -> None:
    """Without the boot script having run (a bare host), `spot up --sync` waits for SSH, then the host bootstrap
    and the sync bring the instance in line."""
    up = joining.archfleet("spot", "up", NAME, "--wait", "60")
    assert up.returncode == 0, up.stderr[-3000:]
    played = map_fleet_to_lab(joining.ec2, NAME, [joining.host])
    joining.instance_id = played[0].instance_id
    archfleet("lab", "reset", joining.host.name, check=True)
    joining.refresh_known_hosts()
    started = time.monotonic()
    synced = joining.archfleet("spot", "up", NAME, "--sync", "--wait", "120")
    assert synced.returncode == 0, synced.stdout + synced.stderr[-4000:]
    assert f"bootstrap\t{joining.instance_id}\tchanged" in synced.stdout, synced.stdout
    assert sync_statuses(synced)[joining.instance_id].startswith("updated"), synced.stdout
    print(f"\nspot up --sync on a bare instance: {time.monotonic() - started:.1f}s")
    proof = joining.archfleet("verify", "--json")
    assert proof.returncode == 0, proof.stdout + proof.stderr[-3000:]
    rows = json.loads(proof.stdout)["rows"]
    assert {(r["host"], r["service"]) for r in rows} == {(joining.instance_id, s) for s in SERVICES}, rows
    assert sync_statuses(joining.archfleet("sync")) == {joining.instance_id: "no changes"}


def test_a_service_that_renders_per_host_is_refused_for_user_data(joining: Joining) -> None:
    """Its spec hash would differ on every instance: the boot script could not give what a sync computes."""
    variant = joining.path.with_name("per-host.yaml")
    variant.write_text(joining.path.read_text().replace(
        "    stop_order: 10\n", "    stop_order: 10\n    environment: {NODE: '{{ host.name }}'}\n", 1))
    refused = joining.archfleet("spot", "up", NAME, "--dry", path=variant)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "services.boot-runner: renders differently per host" in refused.stderr, refused.stderr
    assert "use `spot up --sync`" in refused.stderr
