"""A new EC2 instance's host keys from its console output (archfleet.spot.host_keys): the blocks cloud-init
prints, read from text as EC2 gives it; the decision per host (real keys, real ssh-keygen); and the whole step
against the EC2 test server (moto, whose console output the stand-in sets), where no host is contacted: keys from
the console are recorded, a key the fingerprints disown is refused, and an output without keys leaves accept-new,
said; with fingerprints only, ssh-keyscan meets the keys of a stand-in sshd on loopback
(tests/standins/ssh_host_key_server.py). The same path against a lab host's real sshd is in
tests/lab/test_ec2_fleet.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from archfleet.known_hosts import HostKeyTarget, fingerprint, fingerprints, record_keys
from archfleet.spot.host_keys import ConsoleKeys, judge, parse_console, prove_new_host_keys
from tests.spot.conftest import Endpoint
from tests.standins.ssh_host_key_server import HostKeyServer


def new_key(folder: Path, name: str, kind: str = "ed25519") -> tuple[str, str, str]:
    """(type, blob, ssh-keygen's own SHA256 fingerprint) of a fresh key."""
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(folder / name)], check=True)
    kind_name, blob = (folder / f"{name}.pub").read_text().split()[:2]
    listed = subprocess.run(["ssh-keygen", "-lf", str(folder / f"{name}.pub")], capture_output=True, text=True,
                            check=True).stdout.split()[1]
    return kind_name, blob, listed


def console_text(fingerprint_lines: list[str], key_lines: list[str]) -> str:
    """A console output as EC2 gives it: a kernel log, cloud-init's blocks (the fingerprints with its `ec2:`
    prefix), more log after."""
    lines = ["[    0.000000] Linux version 6.1.0-28-cloud-arm64 (debian-kernel@lists.debian.org)",
             "[   12.204651] cloud-init[612]: Cloud-init v. 22.4.2 running 'modules:final'"]
    if fingerprint_lines:
        lines += ["ec2: #############################################################",
                  "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----",
                  *(f"ec2: {line}" for line in fingerprint_lines),
                  "ec2: -----END SSH HOST KEY FINGERPRINTS-----",
                  "ec2: #############################################################"]
    if key_lines:
        lines += ["-----BEGIN SSH HOST KEY KEYS-----", *key_lines, "-----END SSH HOST KEY KEYS-----"]
    return "\r\n".join([*lines, "[   13.000000] cloud-init[612]: finished at Mon, 07 Dec 2026 23:00:00 +0000"]) + "\r\n"


def test_fingerprints_are_openssh_s_own(tmp_path: Path) -> None:
    for kind in ("ed25519", "ecdsa", "rsa"):
        _, blob, listed = new_key(tmp_path, kind, kind)
        assert fingerprint(blob) == listed


def test_the_blocks_cloud_init_prints_are_read_and_the_last_of_each_counts(tmp_path: Path) -> None:
    kind, blob, listed = new_key(tmp_path, "new")
    _, old_blob, old_listed = new_key(tmp_path, "old")
    before_reboot = console_text([f"256 {old_listed} root@ip-10-0-0-1 (ED25519)"],
                                 [f"ssh-ed25519 {old_blob} root@ip-10-0-0-1"])
    after = console_text([f"256 {listed} root@ip-10-0-0-1 (ED25519)", "3072 MD5:aa:bb root@ip (RSA)"],
                         [f"{kind} {blob} root@ip-10-0-0-1"])
    assert parse_console(before_reboot + after) == ConsoleKeys(frozenset({listed}), ((kind, blob),))
    assert not parse_console("Linux version 2.6.16-xenU\nno blocks here\n")
    unfinished = "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\nec2: 256 " + listed + " root@ip (ED25519)\n"
    assert parse_console(unfinished).fingerprints == {listed}  # the output may end mid-block: what is there


def test_the_decision_for_one_host(tmp_path: Path) -> None:
    kind, blob, listed = new_key(tmp_path, "host")
    _, other_blob, other_listed = new_key(tmp_path, "other")

    def never() -> list[tuple[str, str]]:
        raise AssertionError("no scan when the console carries the keys")

    assert judge(ConsoleKeys(frozenset(), ((kind, blob),)), never).recorded == ((kind, blob),)
    assert judge(ConsoleKeys(frozenset({listed}), ((kind, blob),)), never).recorded == ((kind, blob),)
    disowned = judge(ConsoleKeys(frozenset({other_listed}), ((kind, blob),)), never)
    assert not disowned.recorded and "not among the fingerprints" in str(disowned.refusal)
    # fingerprints only: what the host presents must be among them, every key of it
    assert judge(ConsoleKeys(frozenset({listed}), ()), lambda: [(kind, blob)]).recorded == ((kind, blob),)
    wrong = judge(ConsoleKeys(frozenset({listed}), ()), lambda: [(kind, blob), ("ssh-ed25519", other_blob)])
    assert not wrong.recorded and other_listed in str(wrong.refusal)
    silent = judge(ConsoleKeys(frozenset({listed}), ()), list)
    assert not silent.recorded and "does not answer ssh-keyscan" in str(silent.refusal)
    nothing = judge(ConsoleKeys(frozenset(), ()), never)
    assert not nothing.recorded and not nothing.refusal and "no SSH host key fingerprints" in nothing.note


def test_recorded_keys_are_what_ssh_keygen_finds(tmp_path: Path) -> None:
    kind, blob, listed = new_key(tmp_path, "host")
    known = tmp_path / "config" / "known_hosts"
    known.parent.mkdir()
    known.write_text(f"10.0.0.9 {kind} {blob}")  # a last line without its newline
    target = HostKeyTarget("i-1", "10.0.0.1", 2222, str(known), "accept-new")
    record_keys(target, [(kind, blob)])
    assert fingerprints(str(known), "[10.0.0.1]:2222") == [f"ED25519 {listed}"]
    assert fingerprints(str(known), "10.0.0.9") == [f"ED25519 {listed}"]
    fresh = tmp_path / "new" / "known_hosts"  # made by the recording: 0600 in a 0700 folder
    record_keys(HostKeyTarget("i-2", "10.0.0.2", 22, str(fresh), "accept-new"), [(kind, blob)])
    assert fingerprints(str(fresh), "10.0.0.2") == [f"ED25519 {listed}"]
    assert fresh.stat().st_mode & 0o777 == 0o600 and fresh.parent.stat().st_mode & 0o777 == 0o700


# --- against the EC2 test server ---------------------------------------------------------------------------------

class Inventory:
    """The two things prove_new_host_keys asks of a pyinfra inventory: get_host(name, default) and host.data."""

    def __init__(self, hosts: dict[str, dict[str, Any]]):
        self.hosts = {name: SimpleNamespace(name=name, data=SimpleNamespace(**data)) for name, data in hosts.items()}
        for host in self.hosts.values():
            host.data.get = lambda key, default=None, d=host.data: getattr(d, key, default)

    def get_host(self, name: str, default: Any = None) -> Any:
        return self.hosts.get(name, default)


@pytest.fixture
def instances(endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Three running instances on the test server, which this process's boto3 reaches (as archfleet's would)."""
    for key, value in endpoint.env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    image = endpoint.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    made = endpoint.ec2.run_instances(ImageId=image, InstanceType="t3.small", MinCount=3, MaxCount=3,
                                      SubnetId=endpoint.subnets[0])["Instances"]
    yield [i["InstanceId"] for i in made]
    endpoint.ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in made])


def test_console_keys_are_recorded_before_any_connection_and_a_disowned_key_is_refused(
        endpoint: Endpoint, instances: list[str], tmp_path: Path) -> None:
    kind, blob, listed = new_key(tmp_path, "host")
    _, _, other_listed = new_key(tmp_path, "other")
    keyed, disowned, silent = instances
    endpoint.set_console_output(keyed, console_text([f"256 {listed} root@ip (ED25519)"],
                                                    [f"{kind} {blob} root@ip"]))
    endpoint.set_console_output(disowned, console_text([f"256 {other_listed} root@ip (ED25519)"],
                                                       [f"{kind} {blob} root@ip"]))
    # `silent` keeps moto's own console output: a kernel log without any key
    known = tmp_path / "known_hosts"
    data = {"ssh_known_hosts_file": str(known), "ssh_strict_host_key_checking": "accept-new", "ssh_port": 22}
    inventory = Inventory({
        "keyed": {**data, "ec2_instance_id": keyed, "ssh_hostname": "192.0.2.10", "ec2_region": "eu-west-1"},
        "disowned": {**data, "ec2_instance_id": disowned, "ssh_hostname": "192.0.2.11"},
        "silent": {**data, "ec2_instance_id": silent, "ssh_hostname": "192.0.2.12"},
        "lab-1": {**data, "ssh_hostname": "192.0.2.13"},  # not an EC2 host: not looked at
    })
    said: list[str] = []
    refused = prove_new_host_keys(inventory, ["keyed", "disowned", "silent", "lab-1"], said.append)
    assert fingerprints(str(known), "192.0.2.10") == [f"ED25519 {listed}"]
    assert not fingerprints(str(known), "192.0.2.11") and not fingerprints(str(known), "192.0.2.12")
    assert list(refused) == ["disowned"] and "nothing recorded" in refused["disowned"]
    assert inventory.get_host("disowned").data.ssh_strict_host_key_checking == "yes"
    assert inventory.get_host("silent").data.ssh_strict_host_key_checking == "accept-new"
    assert sorted(line.split(":")[0] for line in said) == ["disowned", "keyed", "silent"], said
    assert f"keyed: host key recorded from its EC2 console output before the first connection: ssh-ed25519 " \
           f"{listed}" in said
    assert any(line.startswith("silent: no SSH host key fingerprints") and "accept-new" in line for line in said)
    # once recorded, a host is not looked at again (no EC2 call, nothing said)
    again: list[str] = []
    assert prove_new_host_keys(inventory, ["keyed"], again.append) == {} and again == []


def test_with_fingerprints_only_the_key_the_host_presents_is_recorded_if_they_list_it_else_refused(
        endpoint: Endpoint, instances: list[str], tmp_path: Path) -> None:
    _, _, listed = new_key(tmp_path, "proven")
    _, _, forged_listed = new_key(tmp_path, "forged")
    _, _, other_listed = new_key(tmp_path, "other")
    proven, forged, _ = instances
    endpoint.set_console_output(proven, console_text([f"256 {listed} root@ip (ED25519)"], []))
    endpoint.set_console_output(forged, console_text([f"256 {other_listed} root@ip (ED25519)"], []))
    known = tmp_path / "known_hosts"
    with HostKeyServer(tmp_path / "proven") as good, HostKeyServer(tmp_path / "forged") as bad:
        data = {"ssh_known_hosts_file": str(known), "ssh_strict_host_key_checking": "accept-new",
                "ssh_hostname": "127.0.0.1"}
        inventory = Inventory({"proven": {**data, "ec2_instance_id": proven, "ssh_port": good.port},
                               "forged": {**data, "ec2_instance_id": forged, "ssh_port": bad.port}})
        said: list[str] = []
        refused = prove_new_host_keys(inventory, ["proven", "forged"], said.append)
    assert fingerprints(str(known), f"[127.0.0.1]:{good.port}") == [f"ED25519 {listed}"]
    assert fingerprints(str(known), f"[127.0.0.1]:{bad.port}") == []
    assert list(refused) == ["forged"] and f"ssh-ed25519 {forged_listed}" in refused["forged"], refused
    assert inventory.get_host("forged").data.ssh_strict_host_key_checking == "yes"
    assert any(line.startswith("forged: host key refused: the key it presents") for line in said), said


def test_an_instance_without_the_newest_output_is_read_again_and_a_refused_read_keeps_accept_new(
        failing: Endpoint, instances: list[str], tmp_path: Path) -> None:
    """EC2 answers ``Latest`` only for Nitro instances (others: UnsupportedOperation): read again without it. A
    role without ec2:GetConsoleOutput (UnauthorizedOperation): no keys from the console, accept-new, said."""
    kind, blob, listed = new_key(tmp_path, "host")
    older, denied, _ = instances
    failing.set_console_output(older, console_text([], [f"{kind} {blob} root@ip"]))
    known = tmp_path / "known_hosts"
    data = {"ssh_known_hosts_file": str(known), "ssh_strict_host_key_checking": "accept-new", "ssh_port": 22}
    inventory = Inventory({"older": {**data, "ec2_instance_id": older, "ssh_hostname": "192.0.2.20"},
                           "denied": {**data, "ec2_instance_id": denied, "ssh_hostname": "192.0.2.21"}})
    said: list[str] = []
    failing.fail_calls("GetConsoleOutput", "UnsupportedOperation", 1)
    assert prove_new_host_keys(inventory, ["older"], said.append) == {}
    assert fingerprints(str(known), "192.0.2.20") == [f"ED25519 {listed}"], said
    failing.fail_calls("GetConsoleOutput", "UnauthorizedOperation", 1)
    assert prove_new_host_keys(inventory, ["denied"], said.append) == {}
    assert said[-1] == ("denied: its EC2 console output could not be read (UnauthorizedOperation): its key is "
                        "accepted on first use (accept-new) and printed when recorded"), said
    assert inventory.get_host("denied").data.ssh_strict_host_key_checking == "accept-new"
