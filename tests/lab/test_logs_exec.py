"""`archfleet logs` and `archfleet exec` across the lab's amd64 and arm64 hosts, and the free disk `verify` shows.

One module-scoped service, `talker`: a small image of the tests' own (FROM the lab's Debian base, no RUN step) whose
container prints `talker-up on <uname -m>` on stdout and `talker-err on stderr` on stderr when it starts, then
waits. A test makes it print more by writing to its PID 1's stdout from a `docker exec` (`/proc/1/fd/1`): that is
the container's log, as Docker records it. The module's teardown removes the service from both hosts.
"""

from __future__ import annotations

import datetime
import json
import os
import pty
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from archfleet.lab.images import base_image
from archfleet.lab.state import LabHost, LabState
from archfleet.placement import container_name
from tests.lab.faults import in_lab_host, publish_test_image
from tests.lab.support import BIN, LAB_INVENTORY, PROJECT, HostBootstrap, archfleet

pytestmark = pytest.mark.lab

REPO = "archfleet-test/talker"
SERVICE = "talker"
CONTAINER = container_name(SERVICE)
COMMAND = ("[sh, -c, \"echo talker-up on $(uname -m); echo talker-err on stderr >&2; "
           "trap 'exit 0' TERM; sleep infinity & wait\"]")
MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}
TIMEOUTS = "timeouts: {connect: 20, facts: 120, pull: 300, start: 60, health: 60, run: 900}\n"


@dataclass
class Talker:
    lab: LabState
    directory: Path
    image: str
    amd64: LabHost
    arm64: LabHost

    @property
    def hosts(self) -> tuple[LabHost, LabHost]:
        return self.amd64, self.arm64

    def fleet(self, extra: str = "", inventory: str = LAB_INVENTORY) -> Path:
        """The fleet file (``extra``: more top-level settings)."""
        path = self.directory / "fleet.yaml"
        path.write_text(f"registry: {{lab: true}}\ninventory: {inventory}\n{TIMEOUTS}{extra}services:\n"
                        f"  {SERVICE}:\n    image: {self.image}\n    groups: [amd64, arm64]\n"
                        f"    command: {COMMAND}\n")
        return path

    def run(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return archfleet(command, SERVICE, "-f", str(self.fleet()), "--limit", self.limit, *args, timeout=600)

    @property
    def limit(self) -> str:
        return f"{self.amd64.name},{self.arm64.name}"

    def say(self, host: LabHost, *lines: str) -> None:
        """The container on ``host`` prints ``lines`` on its stdout (its log)."""
        script = "for line in \"$@\"; do echo \"$line\"; done > /proc/1/fd/1"
        said = in_lab_host(host, "docker", "exec", CONTAINER, "sh", "-c", script, "sh", *lines)
        assert said.returncode == 0, said.stderr

    def sync(self, limit: str | None = None) -> None:
        result = archfleet("sync", "-f", str(self.fleet()), "--limit", limit or self.limit, timeout=900)
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]

    def container_id(self, host: LabHost) -> str:
        found = in_lab_host(host, "docker", "inspect", "--format", "{{.Id}}", CONTAINER)
        assert found.returncode == 0, found.stderr
        return found.stdout.strip()


def clear(hosts: tuple[LabHost, LabHost]) -> None:
    for host in hosts:
        in_lab_host(host, "sh", "-c", f"docker rm -f {CONTAINER}; rm -rf /etc/archfleet/services/{SERVICE}")


@pytest.fixture(scope="module")
def talker(lab: LabState, tmp_path_factory: pytest.TempPathFactory,
           host_bootstrap: HostBootstrap) -> Iterator[Talker]:
    amd64, arm64 = lab.hosts_of("amd64")[0], lab.hosts_of("arm64")[0]
    try:
        host_bootstrap.ensure()
        image = publish_test_image(lab, REPO, "talker-one", "one", {a: base_image(a) for a in ("amd64", "arm64")})
        state = Talker(lab, tmp_path_factory.mktemp("talker"), image.tag, amd64, arm64)
        state.sync()
        yield state
    finally:
        clear((amd64, arm64))


def lines_of(output: str, host: LabHost) -> list[str]:
    """What ``host``'s lines say, without their prefix (``HOST | ``, names padded to the longest)."""
    found = []
    for line in output.splitlines():
        name, separator, text = line.partition(" | ")
        if separator and name.strip() == host.name:
            found.append(text)
    return found


def test_logs_of_both_hosts_come_prefixed_with_their_host_each_as_a_block(talker: Talker) -> None:
    result = talker.run("logs")
    assert result.returncode == 0, result.stdout + result.stderr
    for host in talker.hosts:
        said = lines_of(result.stdout, host)
        # stdout and stderr of the container, both in the log, the host's own `uname -m` in its first line
        assert said[:2] == [f"talker-up on {MACHINE[host.arch]}", "talker-err on stderr"], result.stdout
    width = max(len(h.name) for h in talker.hosts)
    assert f"{talker.amd64.name.ljust(width)} | talker-up on x86_64" in result.stdout.splitlines()
    # host order, no interleaving: every amd64 line before every arm64 line
    owners = [line.partition(" | ")[0].strip() for line in result.stdout.splitlines()]
    assert owners == sorted(owners) and set(owners) == {h.name for h in talker.hosts}, result.stdout


def test_lines_and_since_choose_what_each_host_prints(talker: Talker) -> None:
    for host in talker.hosts:
        talker.say(host, *(f"tail-{n} {host.name}" for n in range(1, 6)))
    last_two = talker.run("logs", "--lines", "2")
    assert last_two.returncode == 0, last_two.stdout + last_two.stderr
    for host in talker.hosts:
        assert lines_of(last_two.stdout, host) == [f"tail-4 {host.name}", f"tail-5 {host.name}"], last_two.stdout

    time.sleep(1.5)
    since = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(1.5)
    for host in talker.hosts:
        talker.say(host, f"after {since}")
    recent = talker.run("logs", "--since", since)
    assert recent.returncode == 0, recent.stdout + recent.stderr
    for host in talker.hosts:
        assert lines_of(recent.stdout, host) == [f"after {since}"], recent.stdout
    hour = talker.run("logs", "--since", "1h", "--lines", "100")
    for host in talker.hosts:
        assert f"talker-up on {MACHINE[host.arch]}" in lines_of(hour.stdout, host), hour.stdout

    nonsense = talker.run("logs", "--since", "yesterday")
    assert (nonsense.returncode, nonsense.stdout) == (2, ""), nonsense.stdout + nonsense.stderr
    assert len(nonsense.stderr.strip().splitlines()) == 1 and "--since: 'yesterday'" in nonsense.stderr


def ssh_children(pid: int) -> set[int]:
    found = subprocess.run(["pgrep", "-P", str(pid), "-x", "ssh"], capture_output=True, text=True).stdout
    return {int(word) for word in found.split()}


def followers(host: LabHost) -> list[str]:
    """The `docker logs --follow` processes of the talker on ``host``."""
    found = in_lab_host(host, "pgrep", "-a", "-f", f"docker logs --follow.*{CONTAINER}")
    return found.stdout.strip().splitlines()


def test_follow_prints_new_lines_from_every_host_and_stops_cleanly_on_ctrl_c(talker: Talker) -> None:
    follow = subprocess.Popen(
        [str(BIN / "archfleet"), "logs", SERVICE, "-f", str(talker.fleet()), "--limit", talker.limit, "--follow",
         "--lines", "0"], cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in follow.stdout or []:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while not all(followers(host) for host in talker.hosts):  # both follows are running on their hosts
            assert follow.poll() is None and time.monotonic() < deadline, follow.stderr.read() if follow.stderr else ""
            time.sleep(0.5)
        children = ssh_children(follow.pid)
        assert len(children) == 2, children
        for host in talker.hosts:
            talker.say(host, f"followed on {host.name}")
        seen: list[str] = []
        while not all(f"followed on {h.name}" in lines_of("".join(seen), h) for h in talker.hosts):
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        follow.send_signal(signal.SIGINT)
        _, stderr = follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "archfleet: interrupted", stderr
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "an ssh child is left"
    stopped = time.monotonic() + 30
    while any(followers(host) for host in talker.hosts) and time.monotonic() < stopped:
        time.sleep(0.5)
    assert not any(followers(host) for host in talker.hosts), "a docker logs --follow is left on a host"


def test_exec_runs_on_each_host_with_the_words_as_given(talker: Talker) -> None:
    result = talker.run("exec", "--", "uname", "-m")
    assert result.returncode == 0, result.stdout + result.stderr
    for host in talker.hosts:
        assert lines_of(result.stdout, host) == [MACHINE[host.arch]], result.stdout
    assert f"exec: exit 0 on {talker.amd64.name}, {talker.arm64.name}" in result.stderr
    words = ["a  b", "$HOME", "*", "; touch /tmp/injected", "'"]
    quoted = talker.run("exec", "--", "sh", "-c", "printf '<%s>\\n' \"$@\"; printf 'no newline at the end'", "sh",
                        *words)
    assert quoted.returncode == 0, quoted.stdout + quoted.stderr
    for host in talker.hosts:
        assert lines_of(quoted.stdout, host) == [*(f"<{word}>" for word in words), "no newline at the end"], \
            quoted.stdout
        injected = in_lab_host(host, "sh", "-c", f"docker exec {CONTAINER} ls /tmp/injected; ls /tmp/injected")
        assert injected.returncode != 0, "a word was read by a shell"


def test_a_command_failing_on_one_host_exits_1_and_every_host_is_shown(talker: Talker) -> None:
    script = ('if [ "$(uname -m)" = aarch64 ]; then echo "failing on $(uname -m)" >&2; exit 3; fi; '
              'echo "fine on $(uname -m)"')
    result = talker.run("exec", "--", "sh", "-c", script)
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines_of(result.stdout, talker.amd64) == ["fine on x86_64"], result.stdout
    assert lines_of(result.stderr, talker.arm64) == ["failing on aarch64"], result.stderr
    assert f"exec: exit 0 on {talker.amd64.name}; exit 3 on {talker.arm64.name}" in result.stderr


def test_interactive_exec_is_one_host_with_a_terminal(talker: Talker) -> None:
    refused = talker.run("exec", "-it", "--", "sh")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stdout == "" and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert talker.amd64.name in refused.stderr and talker.arm64.name in refused.stderr, refused.stderr

    controller, terminal = pty.openpty()
    session = subprocess.Popen(
        [str(BIN / "archfleet"), "exec", SERVICE, "-f", str(talker.fleet()), "--limit", talker.arm64.name, "-it",
         "--", "sh", "-c", "tty; uname -m; exit 4"], cwd=PROJECT, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    seen = b""
    try:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: every holder of the terminal is gone
                break
            if not chunk:
                break
            seen += chunk
        session.wait(timeout=120)
    finally:
        os.close(controller)
        if session.poll() is None:
            session.kill()
    text = seen.decode(errors="replace")
    assert "/dev/pts/" in text and "aarch64" in text, text  # a terminal inside the container, on the arm64 host
    assert session.returncode == 1 and f"exec: {talker.arm64.name}: exit 4" in text, text


@pytest.fixture
def arm64_without_talker(talker: Talker) -> Iterator[LabHost]:
    """The arm64 host with the talker's container removed behind archfleet's back; a sync puts it back after."""
    removed = in_lab_host(talker.arm64, "docker", "rm", "-f", CONTAINER)
    assert removed.returncode == 0, removed.stderr
    yield talker.arm64
    talker.sync(limit=talker.arm64.name)


def test_a_host_without_the_container_says_so_and_the_others_still_print(talker: Talker,
                                                                         arm64_without_talker: LabHost) -> None:
    logs = talker.run("logs")
    assert logs.returncode == 1, logs.stdout + logs.stderr
    assert lines_of(logs.stdout, talker.amd64)[0] == "talker-up on x86_64", logs.stdout
    assert lines_of(logs.stdout, arm64_without_talker) == [], logs.stdout
    assert f"logs: {arm64_without_talker.name}: no container {CONTAINER}" in logs.stderr.splitlines(), logs.stderr
    done = talker.run("exec", "--", "uname", "-m")
    assert done.returncode == 1, done.stdout + done.stderr
    assert lines_of(done.stdout, talker.amd64) == ["x86_64"], done.stdout
    assert f"exec: {arm64_without_talker.name}: no container {CONTAINER}" in done.stderr.splitlines(), done.stderr
    assert f"exec: exit 0 on {talker.amd64.name}; not run on {arm64_without_talker.name}" in done.stderr


# The lab's inventory and one host more, `ghost-1` in the arm64 group: the amd64 host's address on a port where
# nothing listens, so its ssh is refused at once (and never leaves this machine).
GHOST_INVENTORY = """\
from archfleet.lab.inventory import lab_groups

_groups = lab_groups()
amd64 = _groups["amd64"]
arm64 = _groups["arm64"] + [("ghost-1", {**_groups["amd64"][0][1], "ssh_port": 1})]
"""


def test_an_unreachable_host_says_so_and_the_others_still_print(talker: Talker) -> None:
    inventory = talker.directory / "with_ghost.py"
    inventory.write_text(GHOST_INVENTORY)
    fleet = str(talker.fleet(inventory=str(inventory)))
    try:
        limit = f"{talker.limit},ghost-1"
        logs = archfleet("logs", SERVICE, "-f", fleet, "--limit", limit, timeout=600)
        done = archfleet("exec", SERVICE, "-f", fleet, "--limit", limit, "--", "uname", "-m", timeout=600)
    finally:
        talker.fleet()
    assert logs.returncode == 1, logs.stdout + logs.stderr
    for host in talker.hosts:
        assert f"talker-up on {MACHINE[host.arch]}" in lines_of(logs.stdout, host), logs.stdout
    assert "logs: ghost-1: connection refused" in logs.stderr.splitlines(), logs.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    assert {h.name: lines_of(done.stdout, h) for h in talker.hosts} == {
        h.name: [MACHINE[h.arch]] for h in talker.hosts}, done.stdout
    assert "exec: ghost-1: connection refused" in done.stderr.splitlines(), done.stderr
    assert f"exec: exit 0 on {talker.amd64.name}, {talker.arm64.name}; not run on ghost-1" in done.stderr


def df(host: LabHost) -> tuple[int, int]:
    """Size and available bytes of the filesystem of the host's Docker data root, as `df` says on the host."""
    root = in_lab_host(host, "docker", "info", "--format", "{{.DockerRootDir}}").stdout.strip()
    line = in_lab_host(host, "df", "-Pk", root).stdout.splitlines()[-1].split()
    return int(line[1]) * 1024, int(line[3]) * 1024


def verify_disks(talker: Talker, extra: str = "") -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = archfleet("verify", "--json", "-f", str(talker.fleet(extra)), "--limit", talker.limit, timeout=600)
    talker.fleet()  # the module's file as it was
    return result, json.loads(result.stdout)["disks"]


def test_verify_shows_each_hosts_free_disk_and_warns_under_the_threshold(talker: Talker) -> None:
    table = archfleet("verify", "-f", str(talker.fleet()), "--limit", talker.limit, timeout=600)
    assert table.returncode == 0, table.stdout + table.stderr
    result, disks = verify_disks(talker)
    assert result.returncode == 0, result.stdout + result.stderr
    for host in talker.hosts:
        size, available = df(host)
        disk = disks[host.name]
        assert disk["path"] == "/var/lib/docker" and disk["size_bytes"] == size, disk
        assert abs(disk["available_bytes"] - available) < 2 * 1024 ** 3, (disk, available)  # others write meanwhile
        expected_warning = available < 2 * 1024 ** 3 or available < size / 10
        assert bool(disk["warning"]) == expected_warning, disk
        row = next(line for line in table.stdout.splitlines() if line.startswith(f"{host.name} ")
                   and "/var/lib/docker" in line)
        assert f"{disk['size_bytes'] / 1024 ** 3:.1f} GiB" in row, row

    # a threshold above what is free: a warning on each host, on stderr and in the JSON; verify still passes
    above = max(disk["available_bytes"] for disk in disks.values()) // 1024 ** 3 + 100
    warned, disks = verify_disks(talker, f"disk: {{min_free_gib: {above}}}\n")
    assert warned.returncode == 0, warned.stdout + warned.stderr
    for host in talker.hosts:
        warning = disks[host.name]["warning"]
        assert warning.endswith(f"GiB free, under {above} GiB"), disks
        assert f"verify: warning: {host.name}: the disk of /var/lib/docker is filling: {warning}" in warned.stderr
