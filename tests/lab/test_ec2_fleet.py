"""End to end: a spot fleet on the EC2 test server (moto) as the fleet file's inventory, played by lab hosts.

The fleet file says ``inventory: inventories/ec2.py``, ``registry: {lab: true}``, ``ssh:`` (root, the lab's key, a
known_hosts holding the lab hosts' recorded keys), two services and a spot fleet of one amd64 and one arm64 instance
(the test server's t3.nano pool holds one instance, so the second comes from t4g.small). The path a user runs:
``archfleet spot up``; ``archfleet hosts bootstrap`` (deploys/host.py) before services are declared (Docker engine,
the fleet's registry CA and login, the spot watcher), after (the watcher gets the services' stop order), and once
more with nothing to change; ``archfleet sync`` (each host runs the services from one multi-arch tag, pulling its
own platform) twice, the second changing nothing; ``archfleet verify``; an interruption notice (the watcher stops
the services in their order); ``archfleet spot down``.

Test devices: moto's instances get made-up addresses, so ``ec2_lab_address_map`` tags each with the address of the
lab host that plays it (``ARCHFLEET_EC2_ADDRESS=tag:...``); the instance metadata service is a stand-in on the lab
gateway (tests/standins/instance_metadata.py). The lab's first ``amd64`` and ``arm64`` hosts play the instances; what
the module puts on them (its two containers, the watcher) is removed at the end, by name (a ``sync --prune`` would
also remove other modules' services on those shared hosts).
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from archfleet.lab.state import LabHost, LabState, state_dir
from tests.lab.ec2_lab_address_map import ADDRESS_MODE, PlayedInstance, map_fleet_to_lab
from tests.lab.support import PROJECT, PROJECT_IMAGES, on_host, stop_times
from tests.spot.conftest import SCARCE_TYPE, Endpoint, endpoint  # noqa: F401  (endpoint: the moto fixture)
from tests.spot.test_fleet_on_moto import ARM_SSM, X86_FILTER, tagged
from tests.standins.instance_metadata import MetadataStandIn, serve

pytestmark = pytest.mark.lab

NAME = "ec2-lab"
EC2_INVENTORY = PROJECT / "inventories" / "ec2.py"
REGISTRY_OPERATION = "Docker trusts and is logged in to {registry}"
WATCHER_OPERATION = "Spot interruption watcher installed, enabled at boot and running"
# Lower stop_order stops first on an interruption notice. Each exits at once on SIGTERM.
SERVICES = {"ec2-runner": 10, "ec2-cache": 20}
CONTAINER_COMMAND = "trap 'exit 0' TERM; sleep infinity & wait"
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}


def fleet_text(moto: Endpoint, known_hosts: Path, services: bool = True) -> str:
    declared = "".join(
        f"  {name}:\n    image: debian\n    groups: [spot]\n    command: [sh, -c, \"{CONTAINER_COMMAND}\"]\n"
        f"    stop_order: {order}\n" for name, order in SERVICES.items()) if services else ""
    lab = state_dir()
    return f"""\
registry: {{lab: true}}
inventory: {EC2_INVENTORY}
ssh: {{user: root, key_file: {lab / "ssh" / "id_ed25519"}, known_hosts: {known_hosts}}}
images:
{PROJECT_IMAGES["debian"]}services:{"" if services else " {}"}
{declared}spot_fleets:
  {NAME}:
    target_capacity: 2
    instance_types: [{SCARCE_TYPE}, t4g.small]
    ami:
      arm64: {{ssm: {ARM_SSM}}}
      amd64: {X86_FILTER}
    key_pair: {moto.key_pair}
    security_groups: [{moto.security_group}]
    subnets: [{", ".join(moto.subnets)}]
"""


@dataclass
class Ec2Fleet:
    path: Path
    bare: Path  # the same fleet with `services: {}` (the hosts before services are declared)
    env: dict[str, str]  # the moto endpoint, the EC2 inventory's settings and the fleet file
    played: list[PlayedInstance]
    metadata: MetadataStandIn
    registry: str

    def archfleet(self, *args: str, path: Path | None = None, timeout: float = 1800
                  ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(PROJECT / ".venv/bin/archfleet"), *args, "-f", str(path or self.path)],
                              cwd=PROJECT, env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def bootstrap(self, path: Path | None = None) -> subprocess.CompletedProcess[str]:
        """The host deploy over the fleet's hosts, connected as the fleet file's `ssh:` says."""
        return self.archfleet("hosts", "bootstrap", path=path)


def remove_from_lab_host(host: LabHost) -> None:
    """What this module put on a lab host: its service containers and the spot watcher."""
    names = " ".join(f"archfleet-{name}" for name in SERVICES)
    on_host(host, f"docker rm -f {names} >/dev/null 2>&1; "
                  "/etc/init.d/archfleet-spot-watcher stop >/dev/null 2>&1; "
                  "update-rc.d -f archfleet-spot-watcher remove >/dev/null 2>&1; "
                  "rm -f /etc/init.d/archfleet-spot-watcher /usr/local/sbin/archfleet-spot-watcher "
                  "/etc/archfleet/spot-watcher.conf /var/log/archfleet-spot-watcher.log")


@pytest.fixture(scope="module")
def ec2_fleet(lab: LabState, endpoint: Endpoint,  # noqa: F811
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ec2Fleet]:
    folder = tmp_path_factory.mktemp("ec2-fleet")
    # archfleet's known_hosts for this fleet: the lab's recorded keys (by address), so keys are really checked.
    shutil.copyfile(state_dir() / "ssh" / "known_hosts", folder / "known_hosts")
    (folder / "known_hosts").chmod(0o600)
    path = folder / "fleet.yaml"
    path.write_text(fleet_text(endpoint, folder / "known_hosts"))
    bare = folder / "bare.yaml"
    bare.write_text(fleet_text(endpoint, folder / "known_hosts", services=False))
    standin = MetadataStandIn()
    server = serve(standin, lab.gateway)
    env = {**endpoint.env, "ARCHFLEET_EC2_FLEET": NAME, "ARCHFLEET_EC2_ADDRESS": ADDRESS_MODE,
           "ARCHFLEET_EC2_METADATA_URL": f"http://{lab.gateway}:{server.server_address[1]}",
           "ARCHFLEET_FLEET": str(path), "PYTHONUNBUFFERED": "1"}
    fleet = Ec2Fleet(path, bare, env, [], standin, lab.registry.address)
    players = lab.hosts_of("amd64")[:1] + lab.hosts_of("arm64")[:1]
    try:
        up = fleet.archfleet("spot", "up", NAME, "--wait", "60")
        assert up.returncode == 0, up.stderr[-3000:]
        fleet.played = map_fleet_to_lab(endpoint.ec2, NAME, players)
        assert sorted(p.arch for p in fleet.played) == ["amd64", "arm64"], up.stdout
        built = fleet.archfleet("images", "build")
        assert built.returncode == 0, built.stderr[-3000:]
        yield fleet
    finally:
        for host in players:
            remove_from_lab_host(host)
        fleet.archfleet("spot", "down", NAME)  # a no-op after the module's last test
        server.shutdown()
        server.server_close()


INVENTORY_GROUPS = """\
import json, sys
from pathlib import Path
from archfleet.inventory_file import read_groups
groups = read_groups(Path(sys.argv[1]))
print(json.dumps({name: sorted(str(entry[0]) for entry in hosts) for name, (hosts, _) in groups.items()}))
"""


def inventory_groups(ec2_fleet: Ec2Fleet) -> dict[str, list[str]]:
    """``{group: [host names]}`` of inventories/ec2.py as the fleet's commands read it (in its own process)."""
    listed = subprocess.run([str(PROJECT / ".venv/bin/python"), "-c", INVENTORY_GROUPS, str(EC2_INVENTORY)],
                            cwd=PROJECT, env=ec2_fleet.env, capture_output=True, text=True, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr
    groups: dict[str, list[str]] = json.loads(listed.stdout)
    return groups


def test_spot_up_gives_one_instance_per_architecture_and_the_inventory_finds_them(ec2_fleet: Ec2Fleet) -> None:
    groups = inventory_groups(ec2_fleet)
    by_arch = {p.arch: p.instance_id for p in ec2_fleet.played}
    assert groups["amd64"] == [by_arch["amd64"]] and groups["arm64"] == [by_arch["arm64"]]
    assert groups["spot"] == sorted(by_arch.values()) and groups["on_demand"] == []


def bootstrap_lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return {line.split("\t")[1]: line.split("\t")[2] for line in result.stdout.splitlines()
            if line.startswith("bootstrap\t")}


def test_bootstrap_gives_ec2_hosts_the_fleets_registry_and_the_watcher(ec2_fleet: Ec2Fleet, lab: LabState) -> None:
    """First with no services declared yet (their images cannot be what brings the registry), then with them:
    the watcher gets their stop order; then nothing changes."""
    hosts = sorted(p.instance_id for p in ec2_fleet.played)
    before_services = ec2_fleet.bootstrap(ec2_fleet.bare)
    assert sorted(bootstrap_lines(before_services)) == hosts, before_services.stdout
    # pyinfra's progress (stderr) names each operation run: the fleet's registry is one of them on these hosts.
    registry_operation = REGISTRY_OPERATION.format(registry=ec2_fleet.registry)
    assert registry_operation in before_services.stderr, before_services.stderr[-4000:]
    assert WATCHER_OPERATION in before_services.stderr, before_services.stderr[-4000:]
    with_services = bootstrap_lines(ec2_fleet.bootstrap())
    assert with_services == {host: f"changed: {WATCHER_OPERATION}" for host in hosts}, with_services
    again = bootstrap_lines(ec2_fleet.bootstrap())
    assert again == {host: "no changes" for host in hosts}, again

    ca = Path(lab.registry.ca_cert).read_text()
    stop_order = "".join(f"stop=archfleet-{name}\n" for name in sorted(SERVICES, key=SERVICES.__getitem__))
    for played in ec2_fleet.played:
        # (the separator is no base64: a PEM line may end in "==")
        on = on_host(played.host, f"cat /etc/docker/certs.d/{ec2_fleet.registry}/ca.crt; echo @@@; "
                                   "cat /root/.docker/config.json; echo @@@; cat /etc/archfleet/spot-watcher.conf; "
                                   "echo @@@; /etc/init.d/archfleet-spot-watcher status")
        assert on.returncode == 0, (played.host.name, on.stdout, on.stderr)
        host_ca, docker_config, watcher_config, _ = on.stdout.split("@@@\n")
        assert host_ca.strip() == ca.strip(), played.host.name
        assert ec2_fleet.registry in json.loads(docker_config)["auths"], played.host.name
        assert f"metadata_url={ec2_fleet.env['ARCHFLEET_EC2_METADATA_URL']}\n" in watcher_config
        assert watcher_config.endswith(stop_order), watcher_config
    deadline = time.monotonic() + 30
    while ec2_fleet.metadata.authorized_reads < len(ec2_fleet.played):
        assert time.monotonic() < deadline, "the watchers do not read the metadata stand-in"
        time.sleep(0.5)


def proof_rows(ec2_fleet: Ec2Fleet) -> list[dict[str, str]]:
    proof = ec2_fleet.archfleet("verify", "--json")
    assert proof.returncode == 0, proof.stdout + proof.stderr[-3000:]
    rows: list[dict[str, str]] = json.loads(proof.stdout)["rows"]
    return rows


def test_sync_runs_each_host_its_own_platform_then_changes_nothing_and_verify_proves_it(ec2_fleet: Ec2Fleet) -> None:
    first = ec2_fleet.archfleet("sync")
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    hosts = sorted(p.instance_id for p in ec2_fleet.played)
    assert [line.split("\t")[1] for line in first.stdout.splitlines() if line.startswith("sync\t")] == hosts
    second = ec2_fleet.archfleet("sync")
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    statuses = [line.split("\t")[2] for line in second.stdout.splitlines() if line.startswith("sync\t")]
    assert statuses == ["no changes", "no changes"], second.stdout

    rows = proof_rows(ec2_fleet)
    assert {(r["host"], r["service"]) for r in rows} == {(h, s) for h in hosts for s in SERVICES}
    for played in ec2_fleet.played:
        for row in (r for r in rows if r["host"] == played.instance_id):
            assert row["verdict"] == "ok" and row["state"] == "running", row
            assert row["host_platform"] == row["image_platform"] == f"linux/{played.arch}", row
            assert row["inner_machine"] == MACHINES[played.arch], row


def console_fingerprints(host: LabHost) -> list[str]:
    """``BITS SHA256:... COMMENT (TYPE)`` of each of the host's own keys, as cloud-init prints them (ssh-keygen -l
    over the files, read on the host: the test's yardstick, not archfleet's)."""
    keys = on_host(host, "cat /etc/ssh/ssh_host_*_key.pub")
    assert keys.returncode == 0 and keys.stdout.strip(), keys.stderr
    listed = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=keys.stdout, capture_output=True, text=True,
                            check=True, timeout=30)
    return listed.stdout.splitlines()


def console_output(fingerprint_lines: list[str]) -> str:
    """An instance's console output with cloud-init's fingerprint block (EC2 prefixes it with ``ec2:``)."""
    return "\r\n".join(["[   11.5] cloud-init[598]: Cloud-init v. 22.4.2 running 'modules:final'",
                         "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----", *(f"ec2: {f}" for f in fingerprint_lines),
                         "ec2: -----END SSH HOST KEY FINGERPRINTS-----",
                         "[   12.0] cloud-init[598]: finished"]) + "\r\n"


def test_new_instances_keys_are_proven_from_their_console_output_before_the_first_connection(
        ec2_fleet: Ec2Fleet, endpoint: Endpoint, tmp_path: Path) -> None:  # noqa: F811
    """A known_hosts that holds neither host: the amd64 instance's console output carries its lab host's real
    fingerprints (its keys, met with ssh-keyscan, are recorded, then verify reads it over the checked connection);
    the arm64 instance's carries another key's fingerprint (refused: nothing recorded, never connected)."""
    known = tmp_path / "known_hosts"
    path = tmp_path / "fleet.yaml"
    path.write_text(fleet_text(endpoint, known))
    by_arch = {p.arch: p for p in ec2_fleet.played}
    proven, forged = by_arch["amd64"], by_arch["arm64"]
    real = console_fingerprints(proven.host)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "other.pub")], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    endpoint.set_console_output(proven.instance_id, console_output(real))
    endpoint.set_console_output(forged.instance_id, console_output(other))

    result = ec2_fleet.archfleet("verify", "--json", path=path)
    rows = json.loads(result.stdout)["rows"]
    assert {r["verdict"] for r in rows if r["host"] == proven.instance_id} == {"ok"}, result.stdout
    refused = [r for r in rows if r["host"] == forged.instance_id]
    assert refused and all("host key" in r["reason"] for r in refused), result.stdout
    assert f"{proven.instance_id}: host key recorded from its EC2 console output" in result.stderr, result.stderr
    assert f"{forged.instance_id}: host key refused: the key it presents" in result.stderr, result.stderr
    recorded = subprocess.run(["ssh-keygen", "-l", "-F", proven.host.address, "-f", str(known)], capture_output=True,
                              text=True, check=False).stdout
    assert sorted(line.split()[2] for line in recorded.splitlines() if not line.startswith("#")) == \
        sorted(line.split()[1] for line in real)
    nothing = subprocess.run(["ssh-keygen", "-F", forged.host.address, "-f", str(known)], capture_output=True,
                             text=True, check=False)
    assert nothing.returncode != 0 and not nothing.stdout.strip(), nothing.stdout


def finished_at(host: LabHost) -> dict[str, float | None]:
    """Each service container's stop time (epoch seconds), None while it runs."""
    return stop_times(host, [f"archfleet-{name}" for name in SERVICES])


def test_an_interruption_notice_stops_the_services_in_the_fleets_order(ec2_fleet: Ec2Fleet) -> None:
    ec2_fleet.metadata.instance_action = {"action": "terminate", "time": (
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    posted = time.time()
    expected = [f"archfleet-{name}" for name in sorted(SERVICES, key=SERVICES.__getitem__)]
    try:
        for played in ec2_fleet.played:
            while True:
                times = finished_at(played.host)
                if all(t is not None for t in times.values()):
                    break
                assert time.time() - posted < 30, f"{played.instance_id}: still running 30 s after the notice: {times}"
                time.sleep(0.5)
            assert sorted(times, key=lambda name: times[name] or 0) == expected, (played.instance_id, times)
    finally:
        ec2_fleet.metadata.instance_action = None


def test_spot_down_leaves_nothing_and_an_empty_inventory(ec2_fleet: Ec2Fleet,
                                                          endpoint: Endpoint) -> None:  # noqa: F811
    down = ec2_fleet.archfleet("spot", "down", NAME)
    assert down.returncode == 0, down.stderr[-3000:]
    assert tagged(endpoint, NAME) == {"fleets": [], "instances": [], "requests": [], "templates": []}
    assert inventory_groups(ec2_fleet)["all"] == []
