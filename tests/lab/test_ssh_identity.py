"""End to end on the lab: hosts as Debian's cloud images are (root cannot log in over SSH; ``admin`` has passwordless
sudo), reached only as the fleet file's ``ssh:`` section says (user, key, archfleet's own known_hosts; the test's
inventory gives addresses and nothing else). ``hosts bootstrap`` records and prints each new host key and converges
twice; ``sync`` converges twice and ``verify`` passes, all through sudo. A host rebuilt with a new key
(``lab reset``) is refused with one line naming ``archfleet hosts forget HOST`` while the other host syncs; after
``hosts forget`` it is bootstrapped (its new key printed) and syncs again."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from archfleet.lab.hosts import ssh_argv
from archfleet.lab.state import LabHost, LabPaths, LabState, load, state_dir
from tests.lab.support import LAB_INVENTORY, archfleet, fleet_header

pytestmark = pytest.mark.lab

INVENTORY = Path(__file__).parent / "ssh_identity_inventory.py"


@dataclass
class Rig:
    fleet: Path
    known_hosts: Path
    hosts: list[LabHost]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return archfleet(*args, "-f", str(self.fleet))


def host_fingerprint(host: LabHost) -> str:
    """``ED25519 SHA256:...`` of the key the host's sshd really has, read from inside its container."""
    key = subprocess.run(["docker", "exec", host.container, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"],
                         capture_output=True, text=True, check=True).stdout
    words = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=key, capture_output=True, text=True,
                           check=True).stdout.split()
    return f"{words[-1].strip('()')} {words[1]}"


def host_lines(output: str, command: str) -> dict[str, str]:
    return {parts[1]: parts[2] for line in output.splitlines()
            if len(parts := line.split("\t")) == 3 and parts[0] == command}


@pytest.fixture(scope="module")
def rig(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Rig:
    if len(lab.hosts_of("cloud")) < 2:
        archfleet("lab", "up", "--cloud", "2", check=True)
        lab = load()
    directory = tmp_path_factory.mktemp("ssh-identity")
    publish = directory / "publish.yaml"  # the Debian base in the lab registry, through the lab's own inventory
    publish.write_text(fleet_header() + "services: {}\n")
    archfleet("images", "build", "debian", "-f", str(publish), check=True)
    known_hosts = directory / "config" / "known_hosts"
    fleet = directory / "fleet.yaml"
    fleet.write_text(
        fleet_header().replace(LAB_INVENTORY, str(INVENTORY))
        + f"ssh:\n  user: admin\n  key_file: {LabPaths(state_dir()).ssh_key}\n  known_hosts: {known_hosts}\n"
        + "services:\n  idle: {image: debian, groups: [cloud], command: [sleep, infinity]}\n")
    return Rig(fleet, known_hosts, lab.hosts_of("cloud")[:2])


def test_the_cloud_hosts_refuse_root_and_give_admin_passwordless_sudo(rig: Rig) -> None:
    paths = LabPaths(state_dir())
    for host in rig.hosts:
        as_root = subprocess.run(ssh_argv(paths, "root", host.address, "true"), capture_output=True, text=True,
                                 timeout=60, check=False)
        assert as_root.returncode == 255 and "Permission denied" in as_root.stderr, as_root.stderr
        as_admin = subprocess.run(ssh_argv(paths, "admin", host.address, "sudo -n id -u"), capture_output=True,
                                  text=True, timeout=60, check=False)
        assert (as_admin.returncode, as_admin.stdout.strip()) == (0, "0"), as_admin.stderr


def test_bootstrap_records_and_prints_each_new_host_key_and_converges_twice(rig: Rig) -> None:
    first = rig.run("hosts", "bootstrap")
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    for host in rig.hosts:  # the fingerprint printed is the one the host really has
        assert f"archfleet: {host.name}: new host key recorded: {host_fingerprint(host)}\n" in first.stderr
    assert set(host_lines(first.stdout, "bootstrap")) == {h.name for h in rig.hosts}
    assert oct(rig.known_hosts.stat().st_mode & 0o777) == "0o600"
    second = rig.run("hosts", "bootstrap")
    assert second.returncode == 0, second.stderr[-3000:]
    assert set(host_lines(second.stdout, "bootstrap").values()) == {"no changes"}, second.stdout
    assert "new host key" not in second.stderr


def test_sync_as_admin_through_sudo_converges_twice_and_verify_proves_it(rig: Rig) -> None:
    first = rig.run("sync")
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    second = rig.run("sync")
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    assert set(host_lines(second.stdout, "sync").values()) == {"no changes"}, second.stdout
    proof = rig.run("verify")
    assert proof.returncode == 0, proof.stdout + proof.stderr[-3000:]
    # the proof's rows only (verify prints each host's free disk after them, in lines that also start with the host)
    rows = {words[0]: words for line in proof.stdout.splitlines() if (words := line.split())[2:3] == ["idle"]}
    for host in rig.hosts:  # HOST PLATFORM SERVICE STATE DIGEST IMAGE UNAME-M VERDICT
        assert rows[host.name][1:4] + rows[host.name][-1:] == ["linux/amd64", "idle", "running", "ok"], proof.stdout


def test_a_rebuilt_host_is_refused_in_one_line_until_forgotten(rig: Rig) -> None:
    rebuilt, other = rig.hosts
    old = host_fingerprint(rebuilt)
    archfleet("lab", "reset", rebuilt.name, check=True)
    new = host_fingerprint(rebuilt)
    assert new != old, "lab reset kept the host key"
    recorded = rig.known_hosts.read_text()

    refused = rig.run("sync")
    assert refused.returncode == 1, refused.stdout + refused.stderr[-3000:]
    lines = host_lines(refused.stdout, "sync")
    assert lines[rebuilt.name] == (
        f"FAILED: host key changed: {rebuilt.name}'s SSH key is not the one recorded in {rig.known_hosts}; if the "
        f"host was rebuilt, accept its new key with `archfleet hosts forget {rebuilt.name}`")
    assert lines[other.name] == "no changes"
    assert rig.known_hosts.read_text() == recorded  # nothing accepted behind the user's back

    forgotten = rig.run("hosts", "forget", rebuilt.name)
    assert forgotten.returncode == 0, forgotten.stderr
    assert forgotten.stdout == f"{rebuilt.name}: removed the recorded key of {rebuilt.address} from {rig.known_hosts}\n"

    bootstrap = rig.run("hosts", "bootstrap", "--limit", rebuilt.name)  # a fresh first boot: no engine yet
    assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr[-3000:]
    assert f"archfleet: {rebuilt.name}: new host key recorded: {new}\n" in bootstrap.stderr
    synced = rig.run("sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr[-3000:]
    assert host_lines(synced.stdout, "sync") == {rebuilt.name: "updated: idle (create)", other.name: "no changes"}
    again = rig.run("sync")
    assert set(host_lines(again.stdout, "sync").values()) == {"no changes"}, again.stdout
    assert rig.run("verify").returncode == 0


def test_forget_of_a_host_the_fleet_does_not_have_is_bad_input(rig: Rig) -> None:
    result = rig.run("hosts", "forget", "nosuch-1")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "no host named 'nosuch-1'" in result.stderr


def test_pyinfras_paramiko_connector_records_and_refuses_keys_the_same_way(rig: Rig, tmp_path: Path) -> None:
    """Host data ``archfleet_ssh: paramiko`` keeps pyinfra's own connector: the same first-use line, the same
    refusal of a key that is not the recorded one."""
    host = rig.hosts[1]
    inventory = tmp_path / "inventory.py"
    inventory.write_text("from archfleet.lab.inventory import lab_groups\n"
                         f"cloud = [(n, {{'ssh_hostname': d['ssh_hostname'], 'archfleet_ssh': 'paramiko'}})\n"
                         f"         for n, d in lab_groups()['cloud'] if n == {host.name!r}]\n")
    known_hosts = tmp_path / "known_hosts"
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"registry: {{lab: true}}\ninventory: {inventory}\nservices: {{}}\n"
                     f"ssh: {{user: admin, key_file: {LabPaths(state_dir()).ssh_key}, known_hosts: {known_hosts}}}\n")
    first = archfleet("verify", "-f", str(fleet))
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"archfleet: {host.name}: new host key recorded: {host_fingerprint(host)}\n" in first.stderr
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other_key = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    known_hosts.write_text(f"{host.address} {other_key}\n")
    refused = archfleet("verify", "-f", str(fleet))
    assert refused.returncode == 1
    assert (f"unreachable: host key changed: {host.name}'s SSH key is not the one recorded in {known_hosts}; if the "
            f"host was rebuilt, accept its new key with `archfleet hosts forget {host.name}`") in refused.stdout


def test_the_spot_watcher_installs_through_sudo_and_converges(rig: Rig, tmp_path: Path) -> None:
    """deploys/host.py's spot part (a root-only script, an init script, a config under /etc) as admin via sudo."""
    host = rig.hosts[1]
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        f"_cloud = {{}}\nexec(open({str(INVENTORY)!r}).read(), _cloud)  # the test's inventory, with spot data\n"
        f"cloud = [(n, {{**d, 'spot': True, 'spot_metadata_url': 'http://127.0.0.1:9',\n"
        f"               'spot_stop_order': 'archfleet-idle'}}) for n, d in _cloud['cloud'] if n == {host.name!r}]\n")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(rig.fleet.read_text().replace(str(INVENTORY), str(inventory)))
    remove_spot_watcher(host)  # an earlier run's: the first bootstrap below must install it
    try:
        first = archfleet("hosts", "bootstrap", "-f", str(fleet))
        assert first.returncode == 0, first.stdout + first.stderr[-3000:]
        assert host_lines(first.stdout, "bootstrap")[host.name].startswith("changed: Spot interruption watcher")
        second = archfleet("hosts", "bootstrap", "-f", str(fleet))
        assert host_lines(second.stdout, "bootstrap") == {host.name: "no changes"}, second.stdout
        running = subprocess.run(ssh_argv(LabPaths(state_dir()), "admin", host.address,
                                          "sudo -n cat /etc/archfleet/spot-watcher.conf"),
                                 capture_output=True, text=True, timeout=60, check=False)
        assert "archfleet-idle" in running.stdout, running.stderr
    finally:  # the host is an on-demand one again for the other tests
        remove_spot_watcher(host)


def remove_spot_watcher(host: LabHost) -> None:
    script = ("/etc/init.d/archfleet-spot-watcher stop >/dev/null 2>&1; update-rc.d -f archfleet-spot-watcher remove "
              ">/dev/null 2>&1; rm -f /etc/init.d/archfleet-spot-watcher /usr/local/sbin/archfleet-spot-watcher "
              "/etc/archfleet/spot-watcher.conf /var/log/archfleet-spot-watcher.log")
    result = subprocess.run(ssh_argv(LabPaths(state_dir()), "admin", host.address, f"sudo -n sh -c '{script}'"),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
