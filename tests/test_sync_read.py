"""The no-op sync's reader (archfleet.sync.read): the one ssh command line per host, and which hosts it can read.
Its real runs are the lab's sync tests (tests/lab/test_services.py, test_rollout_faults.py, test_ssh_identity.py)."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

from archfleet.facts.service_reads import SERVICES_STATE_COMMAND
from archfleet.inventory_file import load_inventory
from archfleet.sync.read import all_readable_over_openssh, readable_over_openssh, remote_command, ssh_command


def inventory(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "inventory.py"
    path.write_text(text)
    return load_inventory(path)


def test_one_ssh_per_host_with_the_connectors_options_and_no_master(tmp_path: Path) -> None:
    hosts = inventory(tmp_path, (
        "web = [('web-1', {'ssh_hostname': '10.0.0.5', 'ssh_user': 'admin', 'ssh_port': 2222, '_sudo': True,\n"
        "                  'ssh_key': '/keys/id', 'ssh_known_hosts_file': '/kh', \n"
        "                  'ssh_strict_host_key_checking': 'accept-new'}),\n"
        "       ('web-2', {'ssh_user': 'root'})]\n"))
    argv = ssh_command(hosts.get_host("web-1"), SERVICES_STATE_COMMAND, 7)
    assert argv[0] == "ssh" and argv[-3:-1] == ["10.0.0.5", "--"]
    options = " ".join(argv[1:-3])
    for expected in ("BatchMode=yes", "ConnectTimeout=7", "StrictHostKeyChecking=accept-new", "ControlPath=none",
                     "UserKnownHostsFile=/kh", "-i /keys/id", "-p 2222", "-l admin"):
        assert expected in options, (expected, options)
    assert "ControlMaster" not in options and "ControlPersist" not in options
    words = shlex.split(argv[-1])  # what the host's shell runs: the command, quoted once, through sudo -n
    assert words == ["sudo", "-H", "-n", "sh", "-c", SERVICES_STATE_COMMAND]
    plain = ssh_command(hosts.get_host("web-2"), "echo 'a b'", 7)
    assert plain[-3] == "web-2" and shlex.split(plain[-1]) == ["sh", "-c", "echo 'a b'"]
    assert remote_command("true", sudo=False) == "sh -c true"


def test_hosts_only_pyinfra_can_reach_are_read_through_pyinfra(tmp_path: Path) -> None:
    hosts = inventory(tmp_path, (
        "web = ['web-1', ('web-2', {'ssh_password': 'pw'}), ('web-3', {'archfleet_ssh': 'paramiko'}),\n"
        "       ('web-4', {'_sudo': True, '_sudo_password': 'pw'}), ('web-5', {'_sudo': True})]\n"))
    readable = {host.name: readable_over_openssh(host) for host in hosts}
    assert readable == {"web-1": True, "web-2": False, "web-3": False, "web-4": False, "web-5": True}
    assert not all_readable_over_openssh(hosts)
    assert all_readable_over_openssh([hosts.get_host("web-1"), hosts.get_host("web-5")])
    local = inventory(tmp_path, "local = ['@local']\n")
    assert not all_readable_over_openssh(local)


def test_the_reader_and_pyinfras_path_say_the_same_words_for_ssh_failures() -> None:
    """One mapping (archfleet.sync.outcome) for both ways of reading a host: timeouts carry the bound, a host that
    accepts but never answers is a timeout too, a changed key is the line that says how to accept it."""
    from archfleet.sync.outcome import connect_error_reason, connect_reason, with_key_advice

    timed_out = "ssh: connect to host 10.0.0.5 port 22: Connection timed out"
    banner = "Connection timed out during banner exchange"
    assert connect_reason(timed_out, 20) == "connect timed out after 20 s"
    assert connect_reason(banner, 20).startswith("connect timed out after 20 s")
    assert connect_error_reason(Exception(timed_out), 20) == connect_reason(timed_out, 20)
    changed = connect_reason("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@", 20)
    advice = with_key_advice("web-1", changed, "/kh")
    assert "archfleet hosts forget web-1" in advice and "/kh" in advice
    assert with_key_advice("web-1", "connection refused", "/kh") == "connection refused"


def test_hosts_only_pyinfra_reaches_are_read_in_parallel_and_within_the_bound(tmp_path: Path) -> None:
    """`archfleet sync` (the console script, which does not patch the process for gevent at its start) of hosts
    that pyinfra's paramiko connector reaches, each a loopback port that completes the TCP handshake and never
    sends an SSH banner: every host fails with the connect bound, and all of them within about one bound (read one
    after the other, six hosts would take six)."""
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(6)]  # never accepted: no banner, ever
    try:
        ports = [listener.getsockname()[1] for listener in listeners]
        (tmp_path / "inventory.py").write_text(
            f"ports = {ports!r}\n"
            "hosts = [(f'silent-{i}', {'ssh_hostname': '127.0.0.1', 'ssh_port': port, 'ssh_user': 'root',\n"
            "                          'archfleet_ssh': 'paramiko'}) for i, port in enumerate(ports)]\n")
        (tmp_path / "fleet.yaml").write_text("registry: {address: '127.0.0.1:1'}\ninventory: inventory.py\n"
                                             "timeouts: {connect: 2, facts: 1}\nservices: {}\n")
        started = time.monotonic()
        result = subprocess.run([str(Path(sys.executable).parent / "archfleet"), "sync", "-f",
                                 str(tmp_path / "fleet.yaml")], capture_output=True, text=True, timeout=120,
                                check=False)
        elapsed = time.monotonic() - started
    finally:
        for listener in listeners:
            listener.close()
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines() if line.startswith("sync\t")]
    assert sorted(host for _, host, _ in lines) == [f"silent-{i}" for i in range(6)], result.stdout
    assert {status for _, _, status in lines} == {"FAILED: connect timed out after 2 s"}, result.stdout
    assert elapsed < 7, f"{elapsed:.1f} s for six hosts bounded by 3 s each: read one after the other"
