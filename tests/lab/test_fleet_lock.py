"""The fleet lock on the lab (docs/lock.md): two syncs of two releases at once, a lock left by a killed sync, `lock
status` and `lock release`, two operators on disjoint hosts, and the plain deploys under the lock.

One module-scoped fleet file per release of `mover` (a small image the tests build from the lab's base, as
test_services does: releases `lock-a`, `lock-b` and `lock-c`, told apart on the hosts by their image's label).
Its containers take about 3 s to become healthy, so a sync holds its locks long enough for another to meet them.
Each run is named by ARCHFLEET_OPERATOR, so a refusal can be checked for the holder it names. What is true on the
hosts is read by container id.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from archfleet.lab.state import LabState
from tests.lab.faults import wait_until
from tests.lab.support import (
    BIN,
    PROJECT,
    HostBootstrap,
    archfleet,
    fleet_header,
    on_host,
    pyinfra,
    remove_every_service,
)
from tests.lab.test_services import MOVER, publish_mover

pytestmark = pytest.mark.lab

RELEASES = ("lock-a", "lock-b", "lock-c")
HOSTS = ("amd64-1", "arm64-1")
LOCK_FILE = "/var/lib/archfleet/lock"
LIMITS = ("--limit", "amd64-1", "--limit", "arm64-1")
SERVICE = """\
services:
  mover:
    image: {registry}/{mover}:{release}
    groups: [amd64, arm64]
    command: [sh, -c, "sleep 3; touch /tmp/ready; exec sleep infinity"]
    healthcheck: {{command: "[ -f /tmp/ready ]", interval: 1, retries: 30}}
"""


@dataclass
class Rig:
    lab: LabState
    directory: Path

    def fleet(self, release: str) -> Path:
        path = self.directory / f"{release}.yaml"
        if not path.exists():
            path.write_text(fleet_header() + SERVICE.format(registry=self.lab.registry.address, mover=MOVER,
                                                            release=release))
        return path

    def start(self, operator: str, *args: str) -> subprocess.Popen[str]:
        """`archfleet ARGS` started now as OPERATOR (its own session: a SIGKILL reaches its ssh processes too)."""
        return subprocess.Popen([str(BIN / "archfleet"), *args], cwd=PROJECT, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={**os.environ, "ARCHFLEET_OPERATOR": operator},
                                start_new_session=True)

    def sync(self, release: str, *args: str, operator: str = "tester@lab") -> subprocess.CompletedProcess[str]:
        process = self.start(operator, "sync", "-f", str(self.fleet(release)), *args)
        out, err = process.communicate(timeout=900)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def status(self) -> dict[str, str]:
        """`lock status`: host -> its line's text."""
        result = archfleet("lock", "status", "-f", str(self.fleet(RELEASES[0])))
        assert result.returncode == 0, result.stdout + result.stderr
        return dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)

    def movers(self) -> dict[str, list[tuple[str, str, str, str]]]:
        """host -> every archfleet container there: (name, id, release label, state)."""
        found: dict[str, list[tuple[str, str, str, str]]] = {}
        for host in self.hosts():
            out = on_host(host, "docker ps -a --filter label=archfleet.service --format "
                                "'{{.Names}} {{.ID}} {{.Label \"archfleet.test.build\"}} {{.State}}'")
            assert out.returncode == 0, out.stderr
            found[host.name] = sorted(tuple(line.split()) for line in out.stdout.splitlines()  # type: ignore[misc]
                                      if line.strip())
        return found

    def hosts(self) -> list:  # type: ignore[type-arg]
        return [self.lab.host(name) for name in HOSTS]

    def running(self, release: str) -> dict[str, str]:
        """Each host runs exactly one mover container, healthy and of ``release``: host -> its container id."""
        ids = {}
        for host, found in self.movers().items():
            assert [(name, build, state) for name, _, build, state in found] == \
                [("archfleet-mover", release, "running")], (host, found)
            ids[host] = found[0][1]
        return ids

    def settled_on(self, release: str) -> dict[str, str]:
        """The hosts run ``release`` and a sync of it changes nothing (converge twice): the container ids."""
        ids = self.running(release)
        again = self.sync(release)
        assert again.returncode == 0 and statuses(again.stdout) == dict.fromkeys(HOSTS, "no changes"), again
        assert self.running(release) == ids
        return ids

    def wait_for_line(self, process: subprocess.Popen[str], pattern: str, seconds: float = 300) -> list[str]:
        """Read the process's stderr until a line matches (the lines read so far)."""
        assert process.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if re.search(pattern, line):
                return lines
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(lines)}")

    def remove_locks(self) -> None:
        for host in self.hosts():
            on_host(host, f"rm -f {LOCK_FILE}")


def statuses(stdout: str) -> dict[str, str]:
    return {line.split("\t")[1]: line.split("\t")[2] for line in stdout.splitlines() if line.startswith("sync\t")}


def finish(process: subprocess.Popen[str], earlier: str = "") -> subprocess.CompletedProcess[str]:
    out, err = process.communicate(timeout=900)
    return subprocess.CompletedProcess(process.args, process.returncode, out, earlier + err)


def current_release(rig: Rig) -> str:
    """The one release every host runs now."""
    current = {found[0][2] for found in rig.movers().values() if found}
    assert len(current) == 1, rig.movers()
    return current.pop()


def others(rig: Rig) -> list[str]:
    """The two releases the hosts do not run now (every test leaves them on one release)."""
    current = {found[0][2] for found in rig.movers().values() if found}
    assert len(current) == 1, rig.movers()
    return [release for release in RELEASES if release not in current]


def settle(rig: Rig, seconds: float = 180) -> dict[str, list[tuple[str, str, str, str]]]:
    """The hosts' containers once no step script of a killed run runs there any more: a script already started on
    a host runs to its end (its ssh session lives in the connection's master process), so what it changes must be
    over before anything else is compared."""
    deadline = time.monotonic() + seconds
    while any(on_host(host, "pgrep -f 'archfleet-[s]witch' >/dev/null").returncode == 0 for host in rig.hosts()):
        assert time.monotonic() < deadline, "a killed run's step script still runs"
        time.sleep(1)
    return rig.movers()


@pytest.fixture(scope="module")
def rig(lab: LabState, tmp_path_factory: pytest.TempPathFactory, host_bootstrap: HostBootstrap) -> Iterator[Rig]:
    host_bootstrap.ensure()
    for release in RELEASES:
        publish_mover(lab, release, tag=release)
    rig = Rig(lab, tmp_path_factory.mktemp("fleet-lock"))
    rig.remove_locks()  # a lock a killed run left on the lab
    first = rig.sync(RELEASES[0])
    assert first.returncode == 0, first.stdout + first.stderr
    yield rig
    rig.remove_locks()
    remove_every_service(rig.directory)


def test_of_two_syncs_at_once_one_is_refused_naming_the_holder_and_changes_nothing(rig: Rig) -> None:
    """Two releases synced 0.3 s apart: one run takes every lock, the other is refused at once in one line naming
    the holder, its command, age and message; the hosts run the winner's release, one container each."""
    releases = dict(zip(("alice@lab", "bob@lab"), others(rig), strict=True))
    alice = rig.start("alice@lab", "sync", "-f", str(rig.fleet(releases["alice@lab"])), "--message", "alice's")
    time.sleep(0.3)
    bob = rig.start("bob@lab", "sync", "-f", str(rig.fleet(releases["bob@lab"])), "--message", "bob's")
    runs = {"alice@lab": finish(alice), "bob@lab": finish(bob)}
    refused = {who: run for who, run in runs.items() if run.returncode != 0}
    assert len(refused) == 1, runs
    (loser, lost), = refused.items()
    winner = next(who for who in runs if who != loser)
    errors = [line for line in lost.stderr.splitlines() if line.startswith("archfleet: error:")]
    message = f"{winner.split('@')[0]}'s"
    assert len(errors) == 1 and re.fullmatch(
        rf'archfleet: error: (amd64-1|arm64-1) is locked by {winner} \(sync, \d+ s ago: "{message}"\); '
        r"wait with --lock-wait SECONDS, or see archfleet lock status", errors[0]), lost.stderr
    assert "sync: pull:" not in lost.stderr and lost.stdout == "", lost
    assert statuses(runs[winner].stdout) == dict.fromkeys(HOSTS, "updated: mover (recreate)"), runs[winner]
    rig.settled_on(releases[winner])  # the winner's release on every host, one container each, and it stays
    assert rig.status() == dict.fromkeys(HOSTS, "free")


def test_with_lock_wait_the_second_sync_runs_after_the_first(rig: Rig) -> None:
    """`lock status` shows the first sync's locks while it runs; the second, with --lock-wait, says for whom it
    waits, then runs once the first is done, planned again from the hosts as the first left them."""
    first_release, second_release = others(rig)
    alice = rig.start("alice@lab", "sync", "-f", str(rig.fleet(first_release)), "--message", "first")
    deadline, seen = time.monotonic() + 120, {}
    while time.monotonic() < deadline and alice.poll() is None:
        seen = rig.status()
        if all("locked by alice@lab" in line for line in seen.values()):
            break
        time.sleep(0.2)
    assert set(seen) == set(HOSTS) and all(re.fullmatch(r'locked by alice@lab \(sync, \d+ s ago: "first"\), '
                                                        r"run \d{8}T\d{6}Z-[0-9a-f]{4}", line)
                                           for line in seen.values()), seen
    bob = rig.start("bob@lab", "sync", "-f", str(rig.fleet(second_release)), "--lock-wait", "600")
    first = finish(alice)
    second = finish(bob)
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    assert re.search(r'lock: waiting for amd64-1, locked by alice@lab \(sync, \d+ s ago: "first"\)', second.stderr)
    for host in HOSTS:  # bob read the hosts before alice changed them
        assert f"[{host}] changed since the first read" in second.stderr, second.stderr
    assert statuses(second.stdout) == dict.fromkeys(HOSTS, "updated: mover (recreate)"), second.stdout
    rig.settled_on(second_release)
    assert rig.status() == dict.fromkeys(HOSTS, "free")


def test_a_lock_left_by_a_killed_sync_blocks_the_next_until_released(rig: Rig) -> None:
    """A sync killed mid-switch leaves its locks: the next sync is refused in one line naming it; `lock release`
    keeps a live lock (without --force) and breaks a stale one (expired, or its host rebooted) after saying what it
    breaks; then a sync repairs what the killed run left."""
    new = others(rig)[0]
    carol = rig.start("carol@lab", "sync", "-f", str(rig.fleet(new)), "--message", "killed")
    rig.wait_for_line(carol, r"sync: mover: canary")
    wait_until(f"the canary's switch under way (a mover of {new} on a host)",
               lambda: any(build == new for found in rig.movers().values() for _, _, build, _ in found), 120)
    os.killpg(carol.pid, signal.SIGKILL)
    carol.communicate(timeout=60)
    before = settle(rig)

    blocked = rig.sync(new, operator="dave@lab")
    assert blocked.returncode == 1, blocked
    assert re.search(r'archfleet: error: amd64-1 is locked by carol@lab \(sync, \d+ s ago: "killed"\); wait with '
                     r"--lock-wait SECONDS, or see archfleet lock status", blocked.stderr), blocked.stderr
    assert rig.movers() == before

    kept = archfleet("lock", "release", "-f", str(rig.fleet(new)))
    assert kept.returncode == 1, kept
    for host in HOSTS:
        assert re.search(rf'{host}\tkept: locked by carol@lab \(sync, \d+ s ago: "killed"\), live', kept.stdout), kept
    assert all("locked by carol@lab" in line and "stale" not in line for line in rig.status().values())

    amd64, arm64 = rig.hosts()
    on_host(amd64, f"sed -i 's/^expires=.*/expires=1/' {LOCK_FILE}")
    on_host(arm64, f"sed -i 's/^boot_id=.*/boot_id=00000000-0000-0000-0000-000000000000/' {LOCK_FILE}")
    stale = rig.status()
    assert stale["amd64-1"].endswith("; stale: expired") and stale["arm64-1"].endswith("; stale: host rebooted"), stale
    refused = rig.sync(new, operator="dave@lab")
    assert refused.returncode == 1 and "whose holder is gone (stale: expired); `archfleet lock release --limit " \
        "amd64-1` breaks it" in refused.stderr, refused.stderr

    broken = archfleet("lock", "release", "-f", str(rig.fleet(new)))
    assert broken.returncode == 0, broken
    for host, why in (("amd64-1", "expired"), ("arm64-1", "host rebooted")):
        assert re.search(rf'{host}\tbreaking the lock of carol@lab \(sync, \d+ s ago: "killed"\) \(stale: {why}\)',
                         broken.stdout), broken.stdout
        assert f"{host}\tbroken" in broken.stdout
    assert rig.status() == dict.fromkeys(HOSTS, "free")

    repaired = rig.sync(new, operator="dave@lab")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    rig.settled_on(new)


def test_a_live_lock_is_broken_only_with_force(rig: Rig) -> None:
    """`lock release --force` breaks a live lock, saying whose; a lock of an unknown token is never touched by a
    run's own release."""
    amd64 = rig.lab.host("amd64-1")
    on_host(amd64, f"mkdir -p -m 0700 /var/lib/archfleet && printf 'token=other\\nholder=erin@lab\\nsince=%s\\n"
                   f"command=rollback mover\\nmessage=\\nexpires=%s\\nboot_id=%s\\n' $(date +%s) "
                   f"$(($(date +%s) + 3600)) $(cat /proc/sys/kernel/random/boot_id) > {LOCK_FILE}")
    refused = rig.sync(others(rig)[0], "--limit", "amd64-1")
    assert refused.returncode == 1 and re.search(r"amd64-1 is locked by erin@lab \(rollback mover, \d+ s ago\); ",
                                                 refused.stderr), refused.stderr
    forced = archfleet("lock", "release", "--force", "--limit", "amd64-1", "-f", str(rig.fleet(RELEASES[0])))
    assert forced.returncode == 0, forced
    assert re.search(r"amd64-1\tbreaking the lock of erin@lab \(rollback mover, \d+ s ago\) \(live: --force\)\n"
                     r"amd64-1\tbroken\n", forced.stdout), forced.stdout
    assert rig.status()["amd64-1"] == "free"


def test_a_failed_sync_releases_its_locks(rig: Rig) -> None:
    """A release whose health check never passes: the canary fails and is rolled back, the sync exits 1, and its
    locks are gone with it (released in the same run, on failure too); the hosts run what they ran."""
    before = rig.running(current_release(rig))
    failing = rig.directory / "failing.yaml"
    failing.write_text(rig.fleet(others(rig)[0]).read_text().replace(
        'healthcheck: {command: "[ -f /tmp/ready ]", interval: 1, retries: 30}',
        'healthcheck: {command: "false", interval: 1, retries: 2}'))
    failed = archfleet("sync", "-f", str(failing), "--message", "never healthy")
    assert failed.returncode == 1 and "FAILED" in statuses(failed.stdout)["amd64-1"], failed  # the canary
    assert rig.status() == dict.fromkeys(HOSTS, "free")
    assert settle(rig) and rig.running(current_release(rig)) == before


def test_two_operators_on_disjoint_hosts_do_not_wait_on_each_other(rig: Rig) -> None:
    """Started together, `--limit amd64-1` and `--limit arm64-1` both run at once, neither refused nor waiting."""
    new = others(rig)[0]
    alice = rig.start("alice@lab", "sync", "-f", str(rig.fleet(new)), "--limit", "amd64-1")
    bob = rig.start("bob@lab", "sync", "-f", str(rig.fleet(new)), "--limit", "arm64-1")
    for run, host in ((finish(alice), "amd64-1"), (finish(bob), "arm64-1")):
        assert run.returncode == 0, run.stdout + run.stderr
        assert statuses(run.stdout) == {host: "updated: mover (recreate)"}, run.stdout
        assert "lock: waiting" not in run.stderr and "locked by" not in run.stderr, run.stderr
    rig.settled_on(new)


def test_the_plain_deploys_and_bootstrap_take_the_lock_and_change_nothing_more(rig: Rig) -> None:
    """`hosts bootstrap` and the plain deploys are refused by another run's lock, naming it, and change nothing;
    free, they converge to no changes (the lock is a command, not an operation) and leave the hosts free."""
    amd64 = rig.lab.host("amd64-1")
    before = rig.movers()
    on_host(amd64, f"mkdir -p -m 0700 /var/lib/archfleet && printf 'token=other\\nholder=frank@lab\\nsince=%s\\n"
                   f"command=sync\\nmessage=\\nexpires=%s\\nboot_id=%s\\n' $(date +%s) "
                   f"$(($(date +%s) + 3600)) $(cat /proc/sys/kernel/random/boot_id) > {LOCK_FILE}")
    try:
        bootstrap = archfleet("hosts", "bootstrap", "-f", str(rig.fleet(RELEASES[0])))
        assert bootstrap.returncode == 1 and re.search(
            r"archfleet: error: amd64-1 is locked by frank@lab \(sync, \d+ s ago\); wait with --lock-wait",
            bootstrap.stderr), bootstrap
        plain = pyinfra("deploys/host.py", *LIMITS)
        assert plain.returncode != 0 and re.search(r"amd64-1 is locked by frank@lab \(sync, \d+ s ago\); see "
                                                   "archfleet lock status", plain.output), plain.output[-3000:]
        assert on_host(amd64, f"grep -x token=other {LOCK_FILE}").returncode == 0
        assert rig.movers() == before  # every container, by id and state, as it was
    finally:
        on_host(amd64, f"rm -f {LOCK_FILE}")
    again = pyinfra("deploys/host.py", *LIMITS)
    assert again.returncode == 0 and again.grand_total()["changed"] == 0, again.output[-3000:]
    bootstrap = archfleet("hosts", "bootstrap", "-f", str(rig.fleet(RELEASES[0])), "--message", "bootstrap")
    assert bootstrap.returncode == 0 and set(statuses_of(bootstrap.stdout, "bootstrap").values()) == {"no changes"}, \
        bootstrap
    assert rig.status() == dict.fromkeys(HOSTS, "free")


def statuses_of(stdout: str, title: str) -> dict[str, str]:
    return {line.split("\t")[1]: line.split("\t")[2] for line in stdout.splitlines() if line.startswith(title + "\t")}
