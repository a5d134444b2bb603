"""A wide fleet from a controller whose open-file limit is 256 (issue 31): 300 inventory names for the lab's amd64
host, `sync`, `sync --dry` and `verify` of all of them under ``ulimit -n 256`` (the soft limit, lowered in the child
that runs archfleet), and `--parallel 2` bounding the SSH sessions the host's sshd sees at once.

Every name is a host of its own to archfleet (read, planned, reported); they share one sshd, whose ``MaxStartups``
this module raises for its own duration (sshd's default starts refusing new connections at 10 unauthenticated), and
one engine, which runs the one container the module's service declares for all of them alike."""

from __future__ import annotations

import datetime
import re
import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from archfleet.lab.inventory import host_data
from archfleet.lab.state import LabHost, LabState
from tests.lab.support import BIN, PROJECT, HostBootstrap, fleet_header, on_host, remove_every_service

pytestmark = pytest.mark.lab

NAMES = 300
FILE_LIMIT = 256
SERVICE = """\
services:
  idle:
    image: debian
    groups: [wide]
    command: [sleep, infinity]
"""
# sshd: many connections at once (default 10:30:100), and each session's end logged with its port (VERBOSE)
SSHD_WIDE = ("f=/etc/ssh/sshd_config.d/archfleet-wide.conf; printf 'MaxStartups 1000\\nLogLevel VERBOSE\\n' > \"$f\" "
             "&& kill -HUP \"$(cat /run/sshd.pid)\"")
SSHD_DEFAULT = "rm -f /etc/ssh/sshd_config.d/archfleet-wide.conf && kill -HUP \"$(cat /run/sshd.pid)\""


def name(index: int) -> str:
    return f"wide-{index:03d}"


def write_inventory(path: Path, state: LabState, host: LabHost, names: list[str]) -> None:
    data = host_data(state, host)
    path.write_text(f"wide = [(name, {data!r}) for name in {names!r}]\n")


class WideFleet:
    def __init__(self, directory: Path, state: LabState, host: LabHost):
        self.directory, self.host = directory, host
        self.names = [name(i) for i in range(1, NAMES + 1)]
        write_inventory(directory / "wide.py", state, host, self.names)
        write_inventory(directory / "one.py", state, host, [host.name])  # the real host under its own name
        header = fleet_header().replace(f"inventory: {PROJECT / 'inventories' / 'lab.py'}\n", "")
        self.path = directory / "wide.yaml"
        self.path.write_text(header + "inventory: wide.py\n" + SERVICE)
        self.one = directory / "one.yaml"
        self.one.write_text(header + "inventory: one.py\n" + SERVICE)

    def run(self, *args: str, fleet: Path | None = None, files: int | None = FILE_LIMIT,
            ) -> subprocess.CompletedProcess[str]:
        """`archfleet ARGS -f FLEET` in a child whose soft open-file limit is ``files``."""
        def lower_limit() -> None:
            if files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (files, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

        return subprocess.run([str(BIN / "archfleet"), *args, "-f", str(fleet or self.path)], cwd=PROJECT,
                              capture_output=True, text=True, timeout=1200, check=False, preexec_fn=lower_limit)

    def statuses(self, result: subprocess.CompletedProcess[str]) -> dict[str, str]:
        rows = [line.split("\t") for line in result.stdout.splitlines() if line.startswith("sync\t")]
        return {row[1]: row[2] for row in rows}


@pytest.fixture(scope="module")
def wide(lab: LabState, host_bootstrap: HostBootstrap, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[WideFleet]:
    host_bootstrap.ensure()
    host = lab.hosts_of("amd64")[0]
    assert on_host(host, SSHD_WIDE).returncode == 0
    directory = tmp_path_factory.mktemp("wide")
    fleet = WideFleet(directory, lab, host)
    try:
        built = subprocess.run([str(BIN / "archfleet"), "images", "build", "-f", str(fleet.one)], cwd=PROJECT,
                               capture_output=True, text=True, timeout=1200, check=False)
        assert built.returncode == 0, built.stdout + built.stderr[-3000:]
        first = fleet.run("sync", fleet=fleet.one, files=None)  # the container, once, under the host's own name
        assert first.returncode == 0, first.stdout + first.stderr[-3000:]
        yield fleet
    finally:
        remove_every_service(directory)
        on_host(host, SSHD_DEFAULT)


def container_id(host: LabHost) -> str:
    result = on_host(host, "docker ps -q --no-trunc --filter label=archfleet.service=idle")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_sync_of_300_names_under_ulimit_256_reports_every_host_and_changes_nothing(wide: WideFleet) -> None:
    before = container_id(wide.host)
    assert before
    for args in (("sync", "--dry"), ("sync",)):
        result = wide.run(*args)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Traceback" not in result.stderr and "Too many open files" not in result.stderr, result.stderr[-3000:]
        statuses = wide.statuses(result)
        assert sorted(statuses) == wide.names, result.stdout[-3000:]
        assert set(statuses.values()) == {"no changes"}, result.stdout[-3000:]
        assert f"sync: {NAMES} host(s)" in result.stdout
    assert container_id(wide.host) == before  # the same container, never recreated


def test_verify_of_300_names_under_ulimit_256_proves_every_one(wide: WideFleet) -> None:
    result = wide.run("verify")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    proven = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("wide-")}
    assert proven == set(wide.names)
    assert f"verify: {NAMES} service instance(s) on {NAMES} host(s) proven" in result.stdout


def most_sessions_at_once(host: LabHost, since: str, until: str) -> int:
    """The most SSH connections the host's sshd had authenticated at the same time (its log: each connection's
    `Accepted publickey ... port P` and `Disconnected from user ... port P`)."""
    log = subprocess.run(["docker", "logs", "--timestamps", "--since", since, "--until", until, host.container],
                         capture_output=True, text=True, check=True)
    events = []
    for line in (log.stdout + log.stderr).splitlines():
        match = re.match(r"(\S+) (Accepted publickey for \S+|Disconnected from user \S+) .*port (\d+)", line)
        if match:
            moment = datetime.datetime.fromisoformat(match[1][:26] + "+00:00").timestamp()
            events.append((moment, 1 if match[2].startswith("Accepted") else -1))
    running = most = 0
    for _, change in sorted(events):
        running += change
        most = max(most, running)
    assert events, "sshd logged no connection"
    return most


@pytest.mark.parametrize("parallel", [2, 12])
def test_parallel_bounds_the_ssh_sessions_the_hosts_see_at_once(wide: WideFleet, parallel: int) -> None:
    """60 names read with `--parallel N`: the host's sshd never has more than N sessions at once, and does reach N
    (with 12 the count can see more than 2: the measure is not blind)."""
    since = datetime.datetime.now(datetime.UTC).isoformat()
    result = wide.run("sync", "--dry", "--parallel", str(parallel), "--limit", ",".join(wide.names[:60]))
    until = datetime.datetime.now(datetime.UTC).isoformat()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(wide.statuses(result)) == 60
    most = most_sessions_at_once(wide.host, since, until)
    assert most <= parallel, f"{most} sessions at once with --parallel {parallel}"
    assert most >= min(parallel, 4), f"only {most} session(s) at once with --parallel {parallel}"


def test_more_hosts_at_once_than_the_limit_allows_fail_alone_with_one_line(wide: WideFleet) -> None:
    """`--parallel 300` under `ulimit -n 256`: the hosts whose ssh found no descriptor fail with the reason, every
    other host is read, every host is reported, exit 1, no traceback."""
    result = wide.run("sync", "--dry", "--parallel", str(NAMES))
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    statuses = wide.statuses(result)
    assert sorted(statuses) == wide.names
    refused = [host for host, status in statuses.items() if "out of open files" in status]
    read = [host for host, status in statuses.items() if status == "no changes"]
    assert refused and read and len(refused) + len(read) == NAMES, result.stdout[-3000:]
    assert statuses[refused[0]] == ("FAILED: could not start ssh for ServicesState: out of open files (the limit is "
                                    f"{FILE_LIMIT}): lower --parallel or raise `ulimit -n`"), statuses[refused[0]]
