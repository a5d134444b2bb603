"""The fleet file's ``ssh:`` section: precedence per host (pure), its application to the loaded inventory and to
``inventories/fleet.py``, the ssh options it turns into, and archfleet's known_hosts file (real ssh-keygen)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from archfleet.errors import InputError
from archfleet.fleet import load_fleet
from archfleet.fleet.ssh import SshSettings, SshSpec, connection_data, fleet_inventory_groups
from archfleet.known_hosts import HostKeyTarget, NewKeyWatch, changed_key_reason, fingerprints, forget
from archfleet.ssh import HOST_KEY_MISMATCH, connect_failure, ssh_options

OWN = "/home/me/.config/archfleet/known_hosts"


def spec(**kwargs: object) -> SshSpec:
    return SshSpec(**{"known_hosts": OWN, **kwargs})  # type: ignore[arg-type]


def test_defaults_are_root_without_sudo_on_port_22_with_archfleets_known_hosts() -> None:
    assert connection_data(spec(), "web-1", [], {}) == {
        "ssh_user": "root", "_sudo": False, "ssh_port": 22,
        "ssh_known_hosts_file": OWN, "ssh_strict_host_key_checking": "accept-new",
    }


def test_a_user_who_is_not_root_goes_through_sudo_unless_told_not_to() -> None:
    assert connection_data(spec(top=SshSettings(user="admin")), "h", [], {})["_sudo"] is True
    assert connection_data(spec(top=SshSettings(user="admin", sudo=False)), "h", [], {})["_sudo"] is False
    # the user may come from the inventory and still get the default sudo
    assert connection_data(spec(), "h", [], {"ssh_user": "ubuntu"})["_sudo"] is True
    assert connection_data(spec(top=SshSettings(sudo=True)), "h", [], {})["_sudo"] is True


def test_precedence_inventory_then_host_then_groups_in_listed_order_then_top() -> None:
    layered = spec(
        top=SshSettings(user="admin", port=2200, key_file="/k/top"),
        groups={"arm64": SshSettings(user="ec2-user", port=2201), "spot": SshSettings(user="ubuntu", sudo=False)},
        hosts={"web-1": SshSettings(port=2202)},
    )
    # host entry: port; first listed group saying user: arm64 (not spot, though the host lists spot first);
    # sudo from spot (arm64 does not say); key from the top
    data = connection_data(layered, "web-1", ["spot", "arm64"], {})
    assert (data["ssh_user"], data["ssh_port"], data["_sudo"], data["ssh_key"]) == ("ec2-user", 2202, False, "/k/top")
    # the inventory's own host data wins over all of it
    data = connection_data(layered, "web-1", ["arm64"], {"ssh_user": "root", "ssh_port": 22, "ssh_key": "/k/inv",
                                                          "_sudo": True})
    assert (data["ssh_user"], data["ssh_port"], data["ssh_key"], data["_sudo"]) == ("root", 22, "/k/inv", True)
    # another host, in no group: the top level
    data = connection_data(layered, "db-1", [], {})
    assert (data["ssh_user"], data["ssh_port"]) == ("admin", 2200)


def test_an_inventorys_own_known_hosts_stays_unless_the_fleet_file_names_one() -> None:
    lab = {"ssh_known_hosts_file": "/lab/known_hosts", "ssh_strict_host_key_checking": "yes"}
    data = connection_data(spec(), "amd64-1", [], lab)
    assert (data["ssh_known_hosts_file"], data["ssh_strict_host_key_checking"]) == ("/lab/known_hosts", "yes")
    data = connection_data(spec(known_hosts_given=True), "amd64-1", [], lab)
    assert (data["ssh_known_hosts_file"], data["ssh_strict_host_key_checking"]) == (OWN, "accept-new")


def write_fleet(tmp_path: Path, ssh: str) -> Path:
    (tmp_path / "inventory.py").write_text(
        "amd64 = [('a-1', {'ssh_hostname': '10.0.0.1'}), ('a-2', {'ssh_hostname': '10.0.0.2', 'ssh_user': 'root'})]\n"
        "arm64 = [('b-1', {'ssh_hostname': '10.0.0.3', 'ssh_port': 2222})]\n")
    (tmp_path / "id_test").write_text("not really a key\n")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("registry: {address: 127.0.0.1:9}\ninventory: inventory.py\n" + ssh)
    return fleet


def test_the_loaded_fleets_hosts_carry_the_merged_connection_data(tmp_path: Path) -> None:
    fleet = load_fleet(write_fleet(tmp_path, (
        "ssh:\n  user: admin\n  key_file: id_test\n  known_hosts: kh\n"
        "  groups: {arm64: {user: ec2-user}}\n  hosts: {a-1: {port: 2022}}\n")))
    data = {h.name: {k: h.data.get(k) for k in ("ssh_user", "_sudo", "ssh_port", "ssh_key", "ssh_known_hosts_file")}
            for h in fleet.hosts or []}
    key, known = str(tmp_path / "id_test"), str(tmp_path / "kh")
    assert data == {
        "a-1": {"ssh_user": "admin", "_sudo": True, "ssh_port": 2022, "ssh_key": key, "ssh_known_hosts_file": known},
        "a-2": {"ssh_user": "root", "_sudo": False, "ssh_port": 22, "ssh_key": key, "ssh_known_hosts_file": known},
        "b-1": {"ssh_user": "ec2-user", "_sudo": True, "ssh_port": 2222, "ssh_key": key,
                "ssh_known_hosts_file": known},
    }


def test_inventories_fleet_py_gives_the_pyinfra_cli_the_same_hosts_and_data(tmp_path: Path) -> None:
    path = write_fleet(tmp_path, "ssh: {user: admin, known_hosts: kh}\n")
    groups = fleet_inventory_groups(path)
    assert {name: [h for h, _ in hosts] for name, hosts in groups.items()} == {
        "amd64": ["a-1", "a-2"], "arm64": ["b-1"], "inventory": ["a-1", "a-2", "b-1"]}
    data = dict(groups["amd64"])["a-1"]
    assert (data["ssh_user"], data["_sudo"], data["ssh_hostname"]) == ("admin", True, "10.0.0.1")
    assert data["archfleet_fleet"] == str(path.resolve())
    assert (tmp_path / "kh").is_file()  # made for paramiko, which cannot record a first key in a missing file


def test_a_fleet_whose_inventory_is_inventories_fleet_py_is_refused(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = Path(__file__).resolve().parents[1] / "inventories" / "fleet.py"
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"registry: {{address: 127.0.0.1:9}}\ninventory: {shipped}\n")
    monkeypatch.setenv("ARCHFLEET_FLEET", str(fleet))  # the inventory reads the fleet file it is named in
    with pytest.raises(InputError, match=r"cannot use inventories/fleet\.py"):
        fleet_inventory_groups(fleet)


def test_ssh_options_check_host_keys_against_archfleets_file_and_record_new_ones() -> None:
    data = connection_data(spec(top=SshSettings(user="admin", port=2222, key_file="/k/id")), "h", [], {})
    options = ssh_options({**data, "ssh_hostname": "10.0.0.1"}, "/tmp/ctl", 10)
    pairs = {options[i + 1] for i, word in enumerate(options) if word == "-o"}
    assert {"StrictHostKeyChecking=accept-new", f"UserKnownHostsFile={OWN}", "BatchMode=yes"} <= pairs
    assert options[options.index("-l") + 1] == "admin" and options[options.index("-p") + 1] == "2222"
    assert options[options.index("-i") + 1] == "/k/id"


@pytest.mark.parametrize("said", [
    # OpenSSH with accept-new or yes, a changed key
    "@@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@\nHost key verification failed.",
    # pyinfra's paramiko connector (its ConnectError text)
    "SSH host key error (Host key for 10.0.0.1 does not match.)",
])
def test_a_changed_key_is_a_host_key_mismatch_for_both_clients(said: str) -> None:
    assert connect_failure(said).startswith(HOST_KEY_MISMATCH)


def test_the_refusal_says_how_to_accept_the_new_key() -> None:
    line = changed_key_reason("amd64-1", "/kh")
    assert "\n" not in line and line.endswith("accept its new key with `archfleet hosts forget amd64-1`")


def host_key(tmp_path: Path, name: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
    return " ".join((tmp_path / f"{name}.pub").read_text().split()[:2])


def test_new_keys_are_reported_once_with_their_fingerprint(tmp_path: Path) -> None:
    known = tmp_path / "config" / "known_hosts"
    target = HostKeyTarget("web-1", "10.0.0.1", 2222, str(known), "accept-new")
    watch = NewKeyWatch([target, HostKeyTarget("lab-1", "10.0.0.9", 22, str(known), "yes")])
    assert known.is_file() and oct(known.stat().st_mode & 0o777) == "0o600"
    assert set(watch.pending) == {"web-1"}  # a strict host is never recorded by archfleet
    assert watch.report() == []  # not contacted yet
    key = host_key(tmp_path, "hk")
    known.write_text(f"[10.0.0.1]:2222 {key}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)  # as Debian hashes
    expected = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "hk.pub")], capture_output=True, text=True,
                              check=True).stdout.split()[1]
    assert watch.report() == [f"web-1: new host key recorded: ED25519 {expected}"]
    assert watch.report() == []


def test_forget_removes_the_hosts_name_address_and_port_entries_only(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    old, other = host_key(tmp_path, "old"), host_key(tmp_path, "other")
    known.write_text(f"web-1 {old}\n10.0.0.1 {old}\n[10.0.0.1]:2222 {old}\n10.0.0.2 {other}\n")
    target = HostKeyTarget("web-1", "10.0.0.1", 2222, str(known), "accept-new")
    assert forget(target) == ["web-1", "10.0.0.1", "[10.0.0.1]:2222"]
    assert known.read_text() == f"10.0.0.2 {other}\n"
    assert fingerprints(str(known), "10.0.0.2") and not (tmp_path / "known_hosts.old").exists()
    assert forget(target) == []


def test_a_watch_where_no_key_is_new_runs_no_ssh_keygen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual sync meets no new host: the watch reads the file before and after, and never runs ssh-keygen."""
    import archfleet.known_hosts as known_hosts

    known = tmp_path / "known_hosts"
    known.write_text(f"[10.0.0.1]:2222 {host_key(tmp_path, 'hk')}\n")
    calls: list[tuple[str, ...]] = []
    real_keygen = known_hosts._keygen

    def counted_keygen(*args: str) -> list[str]:
        calls.append(args)
        return real_keygen(*args)

    monkeypatch.setattr(known_hosts, "_keygen", counted_keygen)
    targets = [HostKeyTarget(f"web-{i}", "10.0.0.1", 2222, str(known), "accept-new") for i in range(16)]
    watch = NewKeyWatch(targets)
    assert watch.report() == [] and calls == []
    known.write_text(known.read_text() + f"10.0.0.2 {host_key(tmp_path, 'other')}\n")  # another host's first key
    new = NewKeyWatch([*targets, HostKeyTarget("web-new", "10.0.0.2", 22, str(known), "accept-new")])
    assert watch.report() == []  # the file changed, but none of these hosts' keys was missing before
    assert calls  # ... which took ssh-keygen to tell
    assert set(new.pending) == set()


def test_hosts_forget_edits_the_file_each_host_is_checked_against(tmp_path: Path) -> None:
    """An inventory naming its own known_hosts (as the lab's does) keeps it, so the key to forget is there: the
    command edits that file (real ssh-keygen -R), says so, and leaves archfleet's own file alone."""
    own, archfleets = tmp_path / "lab_known_hosts", tmp_path / "archfleet_known_hosts"
    old, other = host_key(tmp_path, "old"), host_key(tmp_path, "other")
    own.write_text(f"10.0.0.1 {old}\n10.0.0.3 {other}\n")
    archfleets.write_text(f"10.0.0.1 {other}\n")
    (tmp_path / "inventory.py").write_text(
        f"amd64 = [('a-1', {{'ssh_hostname': '10.0.0.1', 'ssh_known_hosts_file': '{own}'}}),\n"
        f"         ('a-3', {{'ssh_hostname': '10.0.0.3', 'ssh_known_hosts_file': '{own}'}})]\n"
        "arm64 = [('b-1', {'ssh_hostname': '10.0.0.1'})]\n")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("registry: {address: 127.0.0.1:9}\ninventory: inventory.py\n")

    def forget_hosts(*names: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(tmp_path / "home")}  # archfleet's own default file: under this HOME
        archfleet = str(Path(sys.executable).parent / "archfleet")
        return subprocess.run([archfleet, "hosts", "forget", "-f", str(fleet), *names], capture_output=True,
                              text=True, timeout=60, check=False, env=env)

    result = forget_hosts("a-1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"a-1: removed the recorded key of 10.0.0.1 from {own}\n"
    assert own.read_text() == f"10.0.0.3 {other}\n" and archfleets.read_text() == f"10.0.0.1 {other}\n"
    # the changed-key line names the file the host is checked against, and the command it names works there
    assert str(own) in changed_key_reason("a-1", str(own))
    again = forget_hosts("a-1", "b-1")
    home_file = tmp_path / "home" / ".config" / "archfleet" / "known_hosts"
    assert again.stdout == f"a-1: nothing recorded in {own}\nb-1: nothing recorded in {home_file}\n", again.stderr
