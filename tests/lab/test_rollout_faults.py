"""The fault matrix of safe rollouts, on the lab: three amd64 hosts and the arm64 host run v2ray; each case breaks
a release (or the registry, or a host, or the fleet file) and checks afterwards, by container id, what runs on
every host, the exit code, every host's summary line, that no `-previous` container is left, and that the v2ray
proxy answered (a page on this machine fetched through each host's proxy, again and again during the sync).

One module-scoped rig serves every case: the v2ray service runs `archfleet-test/faults-v2ray`, built FROM the
project's v2ray image with no RUN step plus a layer of its own, so a case moves the service to a new build by
moving a tag. A build whose name starts with `bad` fails its health check on a host that has the marker file
/etc/archfleet-faults/fail (mounted at /faults): the test picks where a release fails. A host is killed or paused
once it is seen in the middle of its switch (the old container kept, the new one waiting for health). Case 9
removes the spare service (amd64 hosts) and declares it again, so that "spare left alone" stays a check of a running
container by id in the cases after it. Cases 16 to 18 fail the switch after the stop: a docker client that refuses
some commands (rename, start, stop) comes first on the hosts' PATH. Case 19 drops the SSH session of a switch that
is waiting for health: the script ends its switch alone.

The matrix is printed at the end (pytest -s) and written to fault-matrix.md in pytest's base temp directory.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from archfleet.lab import lab as lab_module
from archfleet.lab import registry as lab_registry
from archfleet.lab.images import base_image
from archfleet.lab.state import LabHost, LabState
from archfleet.lab.system import ensure_packages
from tests.lab.faults import (
    REFUSAL,
    Container,
    MidSwitch,
    ProxyWatch,
    PublishedImage,
    SyncResult,
    SyncRun,
    container_events,
    delete_layer_from_registry,
    docker_refusing,
    fleet_containers,
    host_containers,
    in_lab_host,
    kill_host,
    lab_paths,
    leftover_previous,
    paused,
    publish_test_image,
    running_ids,
    sync,
    timed_events,
    wait_mid_switch,
    wait_until,
)
from tests.lab.support import LAB_INVENTORY, HostBootstrap, archfleet, fleet_header
from tests.lab.test_services import V2RAY_TEMPLATE

pytestmark = pytest.mark.lab

V2RAY_REPO = "archfleet-test/faults-v2ray"
SPARE_REPO = "archfleet-test/faults-spare"
V2RAY = "archfleet-v2ray"
SPARE = "archfleet-spare"
MARKER_DIR = "/etc/archfleet-faults"
CONNECT_TIMEOUT = 20  # the arm64 host answers SSH under QEMU: slow on a busy machine
TIMEOUTS = f"timeouts: {{connect: {CONNECT_TIMEOUT}, facts: 60, pull: 120, start: 20, health: 40, run: 900}}\n"
HEALTH = ("bash -c 'echo > /dev/tcp/127.0.0.1/10086' && "
          "case \"$FAULTS_BUILD\" in bad*) test ! -e /faults/fail ;; esac")
FLEET = """\
registry: {{lab: true}}
inventory: {inventory}
{timeouts}{rollout}services:
  v2ray:
    image: {registry}/{repo}:{tag}
    groups: [amd64, arm64]
    ports: [10086]
    files: [{{template: v2ray.json.j2, mount: /etc/v2ray/config.json}}]
    vars: {{port: 10086, loglevel: warning}}
    secrets: {{vmess_id: {{file: vmess-id, generate: uuid}}}}
    volumes: ["{marker_dir}:/faults:ro"]
{v2ray_extra}    healthcheck:
      command: >-
        {health}
      interval: 1
      timeout: 5
      retries: 6
{spare}{newcomer}"""
SPARE_SERVICE = """\
  spare:
    image: {registry}/{repo}:live
    groups: [amd64]
    command: [sleep, infinity]
"""
# A service no host runs yet (its first rollout goes out in one batch, without a canary): v2ray again, without a
# published port, under its own name.
NEWCOMER = "archfleet-newcomer"
NEWCOMER_SERVICE = """\
  newcomer:
    image: {registry}/{repo}:{tag}
    groups: [amd64, arm64]
    files: [{{template: v2ray.json.j2, mount: /etc/v2ray/config.json}}]
    vars: {{port: 10086, loglevel: warning}}
    secrets: {{vmess_id: {{file: vmess-id, generate: uuid}}}}
    volumes: ["{marker_dir}:/faults:ro"]
    healthcheck:
      command: >-
        {health}
      interval: 1
      timeout: 5
      retries: 6
"""
DEFAULT_ROLLOUT = "rollout: {canary: 1, batch: 3}\n"


@dataclass
class CaseRecord:
    """One row of the matrix, as measured."""

    case: str
    exit: int
    updated: list[str]
    rolled_back: list[str]
    untouched: list[str]
    answered: str  # "all hosts throughout", or where and how long it did not answer
    note: str = ""


@dataclass(repr=False)
class Rig:
    lab: LabState
    directory: Path
    watch: ProxyWatch | None = None
    tag: str = "live"  # the tag of the release the fleet file runs now
    spare: bool = True
    canary: str | None = None  # learned from the first canary failure
    records: list[CaseRecord] = field(default_factory=list)
    canary_times: list[str] = field(default_factory=list)
    builds: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    dirty: bool = False  # a case failed half-way: the next one starts by converging again
    timeouts: str = TIMEOUTS  # the fleet file's `timeouts:` line
    rollout: str = DEFAULT_ROLLOUT  # its `rollout:` line

    def __repr__(self) -> str:
        return f"Rig({self.directory}, tag {self.tag}, canary {self.canary})"

    @property
    def path(self) -> Path:
        return self.directory / "fleet.yaml"

    @property
    def hosts(self) -> list[LabHost]:
        return self.lab.hosts_of("amd64") + self.lab.hosts_of("arm64")

    @property
    def host_names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def host(self, name: str) -> LabHost:
        return self.lab.host(name)

    def fleet_text(self, tag: str | None = None, v2ray_extra: str = "", health: str = HEALTH,
                   rollout: str | None = None, spare: bool | None = None, newcomer: str | None = None) -> str:
        """``newcomer``: the tag of a service no host runs yet (None: not declared)."""
        registry = self.lab.registry.address
        with_spare = self.spare if spare is None else spare
        return FLEET.format(
            inventory=LAB_INVENTORY, timeouts=self.timeouts, rollout=self.rollout if rollout is None else rollout,
            registry=registry, repo=V2RAY_REPO,
            tag=tag or self.tag, marker_dir=MARKER_DIR, v2ray_extra=v2ray_extra, health=health,
            spare=SPARE_SERVICE.format(registry=registry, repo=SPARE_REPO) if with_spare else "",
            newcomer="" if newcomer is None else NEWCOMER_SERVICE.format(
                registry=registry, repo=V2RAY_REPO, tag=newcomer, marker_dir=MARKER_DIR, health=health),
        )

    def write(self, **changes: object) -> None:
        """The fleet file as it is now, with ``changes`` (see ``fleet_text``)."""
        self.path.write_text(self.fleet_text(**changes))  # type: ignore[arg-type]

    def publish(self, prefix: str, tag: str, payload_bytes: int = 64) -> PublishedImage:
        """A new build of the v2ray test image (``prefix`` ``bad`` fails where the marker is) under ``tag``."""
        base = {arch: f"{self.lab.registry.address}/archfleet/v2ray:4.34-{arch}" for arch in ("amd64", "arm64")}
        return publish_test_image(self.lab, V2RAY_REPO, f"{prefix}-{next(self.builds)}", tag, base,
                                  payload_bytes=payload_bytes)

    def snapshot(self) -> dict[str, dict[str, Container] | None]:
        """Every host's containers; every host is up when a case looks (a killed host was booted again, a paused
        one thawed)."""
        found = fleet_containers(self.hosts)
        assert all(containers is not None for containers in found.values()), f"a host is down: {found}"
        return found

    def markers(self, on: list[str]) -> None:
        """The failure marker on exactly the hosts ``on``."""
        def place(host: LabHost) -> None:
            script = f"mkdir -p {MARKER_DIR} && " + (f"touch {MARKER_DIR}/fail" if host.name in on
                                                    else f"rm -f {MARKER_DIR}/fail")
            assert in_lab_host(host, "sh", "-c", script).returncode == 0

        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            list(pool.map(place, self.hosts))

    def touched(self, since: float, until: float) -> dict[str, list[str]]:
        """host -> container events (not health checks) between two wall-clock times."""
        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            events = pool.map(lambda h: container_events(h, since, until), self.hosts)
            return dict(zip(self.host_names, events, strict=True))

    def answered(self, result: SyncResult, served_before: list[str]) -> str:
        """Where the proxy did not answer during the sync (and up to the end of this check), measured."""
        assert self.watch is not None
        self.watch.answering(served_before, timeout=60)  # every host that served before serves again
        gaps = []
        for host in served_before:
            for down, up in self.watch.outages(host, result.started, time.monotonic()):
                gaps.append(f"{host} {(up or time.monotonic()) - down:.1f} s")
        return "all hosts throughout" if not gaps else "gaps: " + ", ".join(gaps)


def kept(rig: Rig, before: dict[str, dict[str, Container] | None], after: dict[str, dict[str, Container] | None],
         name: str) -> None:
    """The container ``name`` runs before and after on every host that declares it (v2ray: every host; spare:
    the amd64 hosts), the same one by id; no other host has it."""
    where = rig.host_names if name == V2RAY else [h.name for h in rig.lab.hosts_of("amd64")]
    old, new = running_ids(before, name), running_ids(after, name)
    assert all(old[h] is not None for h in where), f"{name} was not running everywhere before: {old}"
    assert new == old, f"{name}: before {old}, after {new}"
    assert all(old[h] is None for h in rig.host_names if h not in where), old


def kinds_of(result: SyncResult, rig: Rig) -> dict[str, str]:
    """host -> the kind of its summary line; every host of the rig has one."""
    kinds = result.kinds()
    assert sorted(kinds) == sorted(rig.host_names), result
    return kinds


def hosts_with(kinds: dict[str, str], kind: str) -> list[str]:
    return sorted(h for h, k in kinds.items() if k == kind)


def check_total(result: SyncResult, hosts: int) -> None:
    """The total line agrees with the per-host lines."""
    kinds = result.kinds()
    assert len(kinds) == hosts, result
    counts = {k: sum(1 for v in kinds.values() if v == k) for k in
              ("updated", "rolled back", "FAILED", "not reached", "no changes")}
    expected = (f"sync: {hosts} host(s): {counts['updated']} updated, {counts['rolled back']} rolled back, "
                f"{counts['FAILED']} failed, {counts['not reached']} not reached, {counts['no changes']} unchanged")
    assert result.total == expected, result


def wall(moment: float) -> float:
    """A monotonic time of this process as wall-clock time (docker events speak wall-clock)."""
    return time.time() - (time.monotonic() - moment)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, host_bootstrap: HostBootstrap) -> Iterator[Rig]:
    lab = lab_module.up(amd64=3)
    directory = tmp_path_factory.mktemp("faults")
    rig = Rig(lab, directory)
    try:
        ensure_packages(("v2ray", "curl"))
        host_bootstrap.ensure()
        images = directory / "images.yaml"
        images.write_text(fleet_header("v2ray"))
        archfleet("images", "build", "-f", str(images), check=True)
        (directory / "v2ray.json.j2").write_text(V2RAY_TEMPLATE.replace("{{ loglevel }}", "warning"))
        rig.publish("good", "live")
        publish_test_image(lab, SPARE_REPO, "spare", "live", {a: base_image(a) for a in ("amd64", "arm64")})
        rig.markers(on=[])
        rig.write()
        first = sync(rig.path)
        if first.returncode != 0:  # the stage, not a case: a slow arm64 host may need a second pass
            first = sync(rig.path)
        assert first.returncode == 0, first
        assert set(kinds_of(first, rig).values()) <= {"updated", "no changes"}, first
        rig.watch = ProxyWatch(rig.hosts, (directory / "vmess-id").read_text().strip(), lab.gateway, directory)
        rig.watch.start()
        rig.watch.answering(rig.host_names, timeout=60)
        yield rig
    finally:
        if rig.watch is not None:
            rig.watch.stop()
        report(rig, tmp_path_factory.getbasetemp() / "fault-matrix.md")
        remove_test_services(rig)
        lab_module.up(amd64=1)


@pytest.fixture(autouse=True)
def settled(rig: Rig, request: pytest.FixtureRequest) -> Iterator[None]:
    """Each case starts from the fleet file's state: after a case that failed half-way, one sync puts it back.
    No run is active between cases, so a lock a failed case left (a host frozen while its run held it) is broken
    first, with `lock release --force`: else the repair is refused and every later case errors."""
    if rig.dirty:
        for host in rig.hosts:
            subprocess.run(["docker", "unpause", host.container], capture_output=True, check=False)
        archfleet("lock", "release", "--force", "-f", str(rig.path))
        lab_registry.ensure_registry(lab_paths(), rig.lab.registry.address)
        rig.markers(on=[])
        rig.write()
        repair = sync(rig.path)
        assert repair.returncode == 0, repair
    failed_before = request.session.testsfailed
    yield
    rig.dirty = request.session.testsfailed > failed_before


def remove_test_services(rig: Rig) -> None:
    """Leave the hosts without this module's containers and files (and nothing else removed: a `sync --prune`
    would also take what other modules left)."""
    for host in rig.hosts:
        subprocess.run(["docker", "unpause", host.container], capture_output=True, check=False)
        in_lab_host(host, "sh", "-c", f"docker rm -f {V2RAY} {V2RAY}-previous {SPARE} {SPARE}-previous {NEWCOMER}; "
                                      "rm -rf /etc/archfleet/services/v2ray /etc/archfleet/services/spare "
                                      f"/etc/archfleet/services/newcomer {MARKER_DIR}")


def report(rig: Rig, path: Path) -> None:
    lines = ["| case | exit | updated | rolled back | untouched | service answered |", "|---|---|---|---|---|---|"]
    for r in rig.records:
        lines.append(f"| {r.case} | {r.exit} | {', '.join(r.updated) or '-'} | {', '.join(r.rolled_back) or '-'} "
                     f"| {', '.join(r.untouched) or '-'} | {r.answered}{'; ' + r.note if r.note else ''} |")
    lines += ["", "Failed canary -> old container serving again:", *rig.canary_times]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    print("\n" + text)


def record(rig: Rig, case: str, result: SyncResult, before: dict[str, dict[str, Container] | None],
           after: dict[str, dict[str, Container] | None], answered: str, note: str = "") -> None:
    old, new = running_ids(before, V2RAY), running_ids(after, V2RAY)
    kinds = result.kinds()
    rig.records.append(CaseRecord(
        case, result.returncode,
        updated=sorted(h for h in old if new.get(h) and new[h] != old[h]),
        rolled_back=hosts_with(kinds, "rolled back"),
        untouched=sorted(h for h in old if new.get(h) == old[h] and kinds.get(h) != "rolled back"),
        answered=answered, note=note,
    ))


def canary_failure(rig: Rig, case: str, reason_words: tuple[str, ...], **changes: object) -> SyncResult:
    """A release that fails on the canary: exactly one host touched and put back, the rest not reached."""
    before = rig.snapshot()
    rig.write(**changes)
    try:
        result = sync(rig.path)
    finally:
        rig.write()
    after = rig.snapshot()
    kinds = kinds_of(result, rig)
    assert result.returncode == 1, result
    failed = hosts_with(kinds, "FAILED")
    assert len(failed) == 1, result
    canary = failed[0]
    assert hosts_with(kinds, "not reached") == sorted(h for h in rig.host_names if h != canary), result
    status = result.statuses[canary]
    assert "v2ray" in status and any(word in (status + result.stderr).lower() for word in reason_words), result
    assert f"(the rollout stopped at {canary})" in result.statuses[next(h for h in kinds if h != canary)], result
    check_total(result, len(rig.hosts))
    kept(rig, before, after, V2RAY)
    assert leftover_previous(after) == [], leftover_previous(after)
    touched = rig.touched(wall(result.started), wall(result.finished))
    assert touched[canary], f"the canary {canary} was not touched at all"
    assert {h: e for h, e in touched.items() if h != canary and e} == {}, "only the canary is touched"
    assert rig.watch is not None
    # Untouched hosts are proven untouched by their engines' events; a probe they miss is the machine's load (the
    # arm64 proxy runs under QEMU), so it is measured and reported, not asserted.
    answered = rig.answered(result, rig.host_names)
    rig.canary = canary
    rig.canary_times.append(f"- {case}: {canary_time(rig, result, canary)}")
    record(rig, case, result, before, after, answered)
    return result


def canary_time(rig: Rig, result: SyncResult, canary: str) -> str:
    """From the failure the sync printed to the old container serving again (and the whole outage)."""
    assert rig.watch is not None
    outages = rig.watch.outages(canary, result.started, time.monotonic())
    failure = result.first_line(rf"{canary}.*(FAIL|fail|did not|unhealthy|exited|rolled back|put .* back)")
    if not outages:
        return f"{canary}: no probe missed an answer (outage shorter than the probe period)"
    down, up = outages[0]
    assert up is not None
    printed = f"{up - failure[0]:+.1f} s after the failure was printed" if failure else "no failure line seen"
    return f"{canary}: outage {up - down:.1f} s (first missed probe to first answer); serving again {printed}"


# ------------------------------------------------------------------------------------------------------------
# The matrix


def test_01_a_process_that_cannot_start_leaves_every_host_on_its_old_container(rig: Rig) -> None:
    canary_failure(rig, "1 cannot start (entrypoint /nonexistent)", ("nonexistent", "no such file", "start"),
                   v2ray_extra="    entrypoint: [/nonexistent]\n")


def test_02_a_process_that_exits_at_once_is_put_back(rig: Rig) -> None:
    canary_failure(rig, "2 exits at once (sh -c 'exit 3')", ("exit", "exited"),
                   v2ray_extra="    entrypoint: [sh, -c, 'exit 3']\n")


def test_03_a_failed_health_check_is_put_back(rig: Rig) -> None:
    canary_failure(rig, "3 failed health check", ("health",), health="exit 1")


def test_04_a_layer_the_registry_does_not_have_fails_in_the_pull_and_stops_nothing(rig: Rig) -> None:
    published = rig.publish("good", "missing-layer")
    for arch in ("amd64", "arm64"):
        delete_layer_from_registry(V2RAY_REPO, published.layers[arch][-1])
    before, result, after = synced_with(rig, tag="missing-layer")
    kinds = kinds_of(result, rig)
    assert result.returncode == 1, result
    assert set(kinds.values()) <= {"FAILED", "not reached"}, result
    assert any("pull" in result.statuses[h].lower() for h in hosts_with(kinds, "FAILED")), result
    check_total(result, len(rig.hosts))
    kept(rig, before, after, V2RAY)
    assert leftover_previous(after) == []
    touched = rig.touched(wall(result.started), wall(result.finished))
    assert {h: e for h, e in touched.items() if e} == {}, "nothing is stopped anywhere"
    record(rig, "4 layer missing from the registry", result, before, after, rig.answered(result, rig.host_names))


def test_05_the_registry_stopped_in_the_middle_of_a_rollout(rig: Rig) -> None:
    """The registry goes away once the first host has the new image (the others are still pulling it): every host
    ends with the service running, old or new as its summary line says; the next sync, with the registry back,
    finishes the rollout."""
    published = rig.publish("good", "registry-stop", payload_bytes=24 * 1024 * 1024)
    before = rig.snapshot()
    rig.write(tag="registry-stop")
    paths = lab_paths()
    first_host = rig.hosts[0]
    run = SyncRun(rig.path)
    try:
        wait_until("a host has pulled the new image",
                   lambda: in_lab_host(first_host, "docker", "image", "inspect", "-f", "{{.Id}}",
                                       f"{published.tag.rsplit(':', 1)[0]}@{published.digests['amd64']}"
                                       ).returncode == 0 or run.process.poll() is not None, timeout=300, interval=0.2)
        stopped_at = time.monotonic()
        lab_registry.stop_registry(paths)
        result = run.finish()
    finally:
        lab_registry.ensure_registry(paths, rig.lab.registry.address)
    after = rig.snapshot()
    kinds = kinds_of(result, rig)
    check_consistent(rig, result, before, after, published)
    assert result.returncode == (0 if set(kinds.values()) <= {"updated"} else 1), result
    note = f"registry stopped {stopped_at - result.started:.1f} s into the sync; " + ", ".join(
        f"{h}: {k}" for h, k in sorted(kinds.items()))
    record(rig, "5 registry stopped mid-rollout", result, before, after,
           rig.answered(result, rig.host_names), note)
    converge(rig, "registry-stop", published)


def check_consistent(rig: Rig, result: SyncResult, before: dict[str, dict[str, Container] | None],
                     after: dict[str, dict[str, Container] | None], published: PublishedImage,
                     interrupted: tuple[str, ...] = ()) -> None:
    """Each host's summary line agrees with what it runs: updated -> the new release, anything else -> the old
    container, running; no `-previous` left (except on ``interrupted`` hosts, which the next sync repairs)."""
    old, new = running_ids(before, V2RAY), running_ids(after, V2RAY)
    for host, kind in result.kinds().items():
        if host in interrupted:
            continue
        container = (after[host] or {}).get(V2RAY)
        assert container is not None and container.state == "running", (host, after[host], result)
        arch = rig.host(host).arch
        if kind == "updated":
            assert new[host] != old[host] and container.digest == published.digests[arch], (host, result)
        else:
            assert new[host] == old[host], (host, kind, result)
    left = [line for line in leftover_previous(after) if line.split(":")[0] not in interrupted]
    assert left == [], left


def converge(rig: Rig, tag: str, published: PublishedImage) -> None:
    """The next sync of the same release ends with every host running it, nothing left behind; the one after
    changes nothing."""
    rig.tag = tag
    rig.write()
    repair = sync(rig.path)
    assert repair.returncode == 0, repair
    after = rig.snapshot()
    for host in rig.hosts:
        container = (after[host.name] or {}).get(V2RAY)
        assert container and container.state == "running" and container.digest == published.digests[host.arch], (
            host.name, after[host.name], repair)
    assert leftover_previous(after) == [], (leftover_previous(after), repair)
    again = sync(rig.path)
    assert again.returncode == 0 and set(again.kinds().values()) == {"no changes"}, again
    assert rig.watch is not None
    rig.watch.answering(rig.host_names, timeout=60)


def bad_switch_seen(rig: Rig, tag: str, host: LabHost) -> tuple[PublishedImage, Snapshot, SyncRun, MidSwitch]:
    """A `bad` build published under ``tag`` with the marker on ``host`` alone, the fleet file moved to it and a
    sync started; returns once ``host`` is seen in the middle of its switch: its new container cannot pass its
    check, so the switch waits (Docker calls it unhealthy after about 6 s). The caller removes the marker."""
    published = rig.publish("bad", tag)
    before = rig.snapshot()
    old = running_ids(before, V2RAY)[host.name]
    assert old is not None, before
    rig.markers(on=[host.name])
    rig.write(tag=tag)
    run = SyncRun(rig.path)
    try:
        mid = wait_mid_switch(host, V2RAY, old, published.digests[host.arch], lambda: run.process.poll() is not None)
    except BaseException:
        run.abandon()
        raise
    return published, before, run, mid


def test_06_a_host_killed_in_the_middle_of_a_rollout_is_repaired_by_the_next_sync(rig: Rig) -> None:
    """The host is killed once it is seen waiting for its new container's health: the old container stopped and
    kept, the new one running and not healthy."""
    victim = rig.host("amd64-2")
    try:
        published, before, run, mid = bad_switch_seen(rig, "kill", victim)
        try:
            kill_host(victim)
            killed_at = time.monotonic()
        finally:
            lab_module.up()  # the host boots again (same address, same engine volume) while the sync goes on
        result = run.finish()
    finally:
        rig.markers(on=[])  # whatever happened, the next cases start without it
    after = rig.snapshot()
    kinds = kinds_of(result, rig)
    assert result.returncode == 1, result
    assert kinds[victim.name] == "FAILED", result
    # The kill landed mid-switch: a switch that had ended would have failed on the health check (the marker) and put
    # the old container back; the victim failed otherwise, and its revived engine holds both containers as the
    # kill left them.
    assert "health" not in result.statuses[victim.name].lower(), result
    revived = after[victim.name] or {}
    assert revived.get(f"{V2RAY}-previous") is not None and revived[f"{V2RAY}-previous"].id == mid.previous.id, revived
    assert revived.get(V2RAY) is not None and revived[V2RAY].id == mid.new.id, revived
    check_consistent(rig, result, before, after, published, interrupted=(victim.name,))
    note = (f"killed {killed_at - result.started:.1f} s into the sync, {killed_at - mid.seen:.2f} s after its new "
            f"container was seen waiting for health; {victim.name} after revival: "
            + (", ".join(f"{c.name} {c.state}" for c in revived.values()) or "no container") + "; "
            + ", ".join(f"{h}: {k}" for h, k in sorted(kinds.items())))
    served = [h for h in rig.host_names if h != victim.name]
    record(rig, "6 host killed mid-rollout", result, before, after, rig.answered(result, served), note)
    converge(rig, "kill", published)


def test_07a_a_paused_host_times_out_alone_and_the_others_finish(rig: Rig) -> None:
    published = rig.publish("good", "paused-before")
    before = rig.snapshot()
    frozen = rig.host("amd64-3")
    rig.write(tag="paused-before")
    with paused(frozen):
        result = sync(rig.path, timeout=300)
    after = rig.snapshot()
    kinds = kinds_of(result, rig)
    assert result.returncode == 1, result
    assert kinds[frozen.name] == "FAILED" and "timed out after" in result.statuses[frozen.name], result
    assert f"timed out after {CONNECT_TIMEOUT} s" in result.statuses[frozen.name], result
    others = [h for h in rig.host_names if h != frozen.name]
    assert all(kinds[h] == "updated" for h in others), result
    check_consistent(rig, result, before, after, published)
    assert running_ids(after, V2RAY)[frozen.name] == running_ids(before, V2RAY)[frozen.name]
    record(rig, "7a host paused before the sync", result, before, after, rig.answered(result, rig.host_names),
           f"sync took {result.finished - result.started:.1f} s")
    converge(rig, "paused-before", published)


def test_07b_a_host_paused_during_its_rollout_times_out_and_the_next_sync_repairs_it(rig: Rig) -> None:
    """As in case 6, the host is paused once it is seen waiting for its new container's health."""
    frozen = rig.host("amd64-3")
    try:
        published, before, run, mid = bad_switch_seen(rig, "paused-during", frozen)
        with paused(frozen):
            paused_at = time.monotonic()
            result = run.finish(timeout=400)
    finally:
        rig.markers(on=[])
    after = rig.snapshot()
    kinds = kinds_of(result, rig)
    assert result.returncode == 1, result
    assert kinds[frozen.name] == "FAILED" and "timed out after" in result.statuses[frozen.name], result
    # The pause landed mid-switch: a switch that had ended would have failed on the health check (the marker), not
    # timed out.
    assert "health" not in result.statuses[frozen.name].lower(), result
    check_consistent(rig, result, before, after, published, interrupted=(frozen.name,))
    note = (f"paused {paused_at - mid.seen:.2f} s after its new container was seen waiting for health; sync took "
            f"{result.finished - result.started:.1f} s; " + ", ".join(f"{h}: {k}" for h, k in sorted(kinds.items())))
    record(rig, "7b host paused during its rollout", result, before, after, rig.answered(result, rig.host_names),
           note)
    # The lock the sync took on the frozen host could not be released (the host did not answer): the sync says so
    # in one line with the command that breaks it, and the next sync is refused until it is broken. The matrix
    # knows it froze the host and that no run is active: it breaks the lock, then repairs.
    said = [line for line in result.stderr.splitlines() if "could not release the fleet lock" in line]
    assert len(said) == 1 and f"[{frozen.name}] could not release the fleet lock: " in said[0], result.stderr[-3000:]
    assert said[0].endswith(f"(`archfleet lock release --limit {frozen.name} --force` breaks it)"), said
    awake = rig.snapshot()  # `after` could not read the frozen host
    refused = sync(rig.path)
    assert refused.returncode == 1 and f"{frozen.name} is locked by " in refused.stderr, refused
    assert running_ids(rig.snapshot(), V2RAY) == running_ids(awake, V2RAY), "a refused sync changes nothing"
    broken = archfleet("lock", "release", "--force", "--limit", frozen.name, "-f", str(rig.path))
    assert broken.returncode == 0, broken.stdout + broken.stderr
    converge(rig, "paused-during", published)


@pytest.mark.parametrize("text", ["", "# only comments\n# services:\n", "NO_SERVICES"],
                         ids=["empty", "comments", "no-services-key"])
def test_08_an_empty_or_truncated_fleet_file_is_refused_and_removes_nothing(rig: Rig, text: str) -> None:
    before = rig.snapshot()
    started = time.time()
    header = f"registry: {{lab: true}}\ninventory: {LAB_INVENTORY}\n"
    broken = rig.directory / "broken.yaml"
    broken.write_text(header if text == "NO_SERVICES" else text)
    for args in ((), ("--dry",), ("--prune",)):
        result = sync(broken, *args)
        assert result.returncode == 2, (args, result)
        assert result.stdout == "", result
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result
        assert str(broken) in result.stderr, result
    after = rig.snapshot()
    kept(rig, before, after, V2RAY)
    kept(rig, before, after, SPARE)
    touched = rig.touched(started, time.time())
    assert {h: e for h, e in touched.items() if e} == {}, "nothing removed, nothing stopped"
    if text == "":
        rig.records.append(CaseRecord("8 empty / comments only / no services: (sync, --dry, --prune)", 2, [], [],
                                      rig.host_names, "-", "refused before any host is contacted"))


def test_08b_services_empty_without_prune_keeps_and_lists_everything(rig: Rig) -> None:
    """`services: {}` declares no service: without --prune every container stays (listed as kept)."""
    before = rig.snapshot()
    empty = rig.directory / "no-services.yaml"
    empty.write_text(f"registry: {{lab: true}}\ninventory: {LAB_INVENTORY}\nservices: {{}}\n")
    for args in (("--dry",), ()):
        result = sync(empty, *args)
        assert result.returncode == 0, (args, result)
        for host in rig.hosts:
            listed = "v2ray" + (", spare" if host.kind == "amd64" and rig.spare else "")
            kept_services = sorted(listed.split(", "))
            assert result.statuses[host.name] == (
                f"no changes; kept undeclared: {', '.join(kept_services)} (sync --prune removes)"), result
    after = rig.snapshot()
    kept(rig, before, after, V2RAY)
    kept(rig, before, after, SPARE)
    touched = rig.touched(wall(result.started), wall(result.finished))
    assert {h: e for h, e in touched.items() if e} == {}, "nothing removed, nothing stopped"
    rig.records.append(CaseRecord("8b services: {} without --prune (sync, --dry)", result.returncode, [], [],
                                  rig.host_names, rig.answered(result, rig.host_names),
                                  "every container kept and listed"))


def test_09_a_removed_service_is_listed_and_kept_and_removed_only_with_prune(rig: Rig) -> None:
    """The spare is removed from the fleet file (kept without --prune, removed with it), then declared again: the
    next cases check it is left alone, so it must run again."""
    before = rig.snapshot()
    spare_hosts = sorted(h.name for h in rig.lab.hosts_of("amd64"))
    rig.spare = False
    try:
        rig.write()
        kept_run = sync(rig.path)
        assert kept_run.returncode == 0, kept_run
        for host in rig.host_names:
            assert kept_run.statuses[host] == ("no changes; kept undeclared: spare (sync --prune removes)"
                                               if host in spare_hosts else "no changes"), kept_run
        kept(rig, before, rig.snapshot(), SPARE)
        pruned = sync(rig.path, "--prune")
        after = rig.snapshot()
        assert pruned.returncode == 0, pruned
        for host in rig.host_names:
            if host in spare_hosts:
                assert pruned.statuses[host] == "updated: spare (remove)", pruned
            else:
                assert pruned.statuses[host] == "no changes", pruned
            assert SPARE not in (after[host] or {}), host
        check_total(pruned, len(rig.hosts))
        kept(rig, before, after, V2RAY)
    finally:
        rig.spare = True  # declared again (a failed case: the next case's repair sync brings it back)
        rig.write()
    back = sync(rig.path)
    assert back.returncode == 0, back
    again = rig.snapshot()
    assert {h: k for h, k in back.kinds().items() if k != "no changes"} == dict.fromkeys(spare_hosts, "updated"), back
    spare = running_ids(again, SPARE)
    assert all(spare[h] is not None and spare[h] != running_ids(before, SPARE)[h] for h in spare_hosts), spare
    kept(rig, before, again, V2RAY)
    rig.records.append(CaseRecord(
        "9 removed service: kept without --prune, removed with it", pruned.returncode,
        [f"{h} (spare removed)" for h in spare_hosts], [], [], rig.answered(pruned, rig.host_names),
        "without --prune: exit 0, listed, same ids; declared again: created anew"))


def test_10_a_canary_failure_on_four_hosts_touches_exactly_one_and_puts_it_back(rig: Rig) -> None:
    """A new build (pulled on every host first) that fails its health check everywhere: the canary only."""
    rig.publish("bad", "bad-everywhere")
    rig.markers(on=rig.host_names)
    try:
        canary_failure(rig, "10 canary failure, 4 hosts (bad build)", ("health",), tag="bad-everywhere")
    finally:
        rig.markers(on=[])


Snapshot = dict[str, dict[str, Container] | None]


def synced_with(rig: Rig, **changes: object) -> tuple[Snapshot, SyncResult, Snapshot]:
    """One sync of the fleet file with ``changes`` (then the file is put back): every host's containers before,
    the sync, every host's containers after."""
    before = rig.snapshot()
    rig.write(**changes)
    try:
        result = sync(rig.path)
    finally:
        rig.write()
    return before, result, rig.snapshot()


def bad_release(rig: Rig, published: str, failing_on: list[str], **changes: object) -> tuple[
        Snapshot, SyncResult, Snapshot]:
    """``synced_with`` a `bad` build published under the tag ``published``, failing its health check on the hosts
    ``failing_on`` (the markers are put back)."""
    rig.publish("bad", published)
    rig.markers(on=failing_on)
    try:
        return synced_with(rig, **changes)
    finally:
        rig.markers(on=[])


def failed_in_second_batch(rig: Rig, result: SyncResult, canary: str, canary_kind: str) -> str:
    """A release that failed its health check in the second batch (canary 1, batch 1): exit 1, the canary's summary
    is ``canary_kind``, one host failed, the others were not reached. Returns the failed host."""
    kinds = kinds_of(result, rig)
    assert result.returncode == 1, result
    assert kinds[canary] == canary_kind, result
    failed = hosts_with(kinds, "FAILED")
    assert len(failed) == 1 and "health" in result.statuses[failed[0]].lower(), result
    assert hosts_with(kinds, "not reached") == sorted(set(rig.host_names) - {canary, failed[0]}), result
    check_total(result, len(rig.hosts))
    return failed[0]


def test_11_a_failure_in_the_second_batch_rolls_the_first_back(rig: Rig) -> None:
    canary = rig.canary or rig.host_names[0]
    before, result, after = bad_release(rig, "bad-second-batch", [h for h in rig.host_names if h != canary],
                                        tag="bad-second-batch", rollout="rollout: {canary: 1, batch: 1}\n")
    failed = [failed_in_second_batch(rig, result, canary, "rolled back")]
    assert f"(the rollout stopped at {failed[0]})" in result.statuses[canary], result
    kept(rig, before, after, V2RAY)
    assert leftover_previous(after) == []
    touched = rig.touched(wall(result.started), wall(result.finished))
    assert sorted(h for h, e in touched.items() if e) == sorted([canary, failed[0]]), touched
    record(rig, "11 failure in the second batch (canary 1, batch 1)", result, before, after,
           rig.answered(result, rig.host_names), f"failed at {failed[0]}")


def test_12_a_new_service_that_fails_on_one_host_runs_nowhere_afterwards(rig: Rig) -> None:
    """A service no host runs yet goes out in one batch (no canary), each host switching as soon as its own pull
    is done. Its release fails its health check on one host: afterwards no host runs it (a host that had started it
    is rolled back, the others were not reached), and v2ray and spare keep their containers."""
    failing = rig.host_names[1]
    before, result, after = bad_release(rig, "bad-newcomer", [failing], newcomer="bad-newcomer")
    kinds = kinds_of(result, rig)
    assert result.returncode == 1, result
    assert kinds[failing] == "FAILED" and "health" in result.statuses[failing].lower(), result
    assert set(kinds.values()) - {"FAILED"} <= {"rolled back", "not reached"}, result
    assert f"(the rollout stopped at {failing})" in result.statuses[next(h for h in kinds if h != failing)], result
    check_total(result, len(rig.hosts))
    assert [f"{h}: {c.name} ({c.state})" for h, found in after.items() for c in (found or {}).values()
            if c.name == NEWCOMER] == [], "the new service runs nowhere"
    kept(rig, before, after, V2RAY)
    kept(rig, before, after, SPARE)
    assert leftover_previous(after) == []
    record(rig, "12 new service failing on one host (first rollout, one batch)", result, before, after,
           rig.answered(result, rig.host_names),
           f"failed at {failing}; rolled back: {', '.join(hosts_with(kinds, 'rolled back')) or '-'}")


def test_13_a_new_service_whose_pull_fails_on_one_host_still_goes_out_on_the_others(rig: Rig) -> None:
    """A first rollout (one batch, each host switching once its own pull is done) of a release whose arm64 layer
    the registry lost: the arm64 host fails in its pull and runs nothing new; the amd64 hosts, not held back by it,
    run the new service from their platform's digest; v2ray and spare keep their containers everywhere."""
    published = rig.publish("good", "newcomer-no-arm64")
    delete_layer_from_registry(V2RAY_REPO, published.layers["arm64"][-1])
    before, result, after = synced_with(rig, newcomer="newcomer-no-arm64")
    try:
        kinds = kinds_of(result, rig)
        assert result.returncode == 1, result
        arm64 = [h.name for h in rig.hosts if h.arch == "arm64"]
        assert hosts_with(kinds, "FAILED") == arm64 and "pull" in result.statuses[arm64[0]].lower(), result
        assert hosts_with(kinds, "updated") == sorted(h.name for h in rig.hosts if h.arch == "amd64"), result
        check_total(result, len(rig.hosts))
        for host in rig.hosts:
            newcomer = (after[host.name] or {}).get(NEWCOMER)
            if host.arch == "arm64":
                assert newcomer is None, (host.name, newcomer)
            else:
                assert newcomer is not None and newcomer.state == "running", (host.name, after[host.name])
                assert newcomer.digest == published.digests["amd64"], (host.name, newcomer)
        kept(rig, before, after, V2RAY)
        kept(rig, before, after, SPARE)
        assert leftover_previous(after) == []
        record(rig, "13 new service, its arm64 layer missing (first rollout, one batch)", result, before, after,
               rig.answered(result, rig.host_names), "arm64 failed in its pull; the amd64 hosts run the new service")
    finally:
        for host in rig.hosts:
            in_lab_host(host, "sh", "-c", f"docker rm -f {NEWCOMER}; rm -rf /etc/archfleet/services/newcomer")


PAUSE = 6  # seconds, against a canary whose new build is proven healthy within about one


def test_14_a_pause_between_batches_holds_the_next_batch_back(rig: Rig) -> None:
    """`rollout: pause: N`: N seconds between batches. With a canary and one batch of the rest, the batch's first
    container event on any host comes at least N s after the canary's new container started (the engines' own
    clocks), and the sync says why."""
    published = rig.publish("good", "paced")
    rig.tag = "paced"
    before, result, after = synced_with(rig, rollout=f"rollout: {{canary: 1, batch: 3, pause: {PAUSE}}}\n")
    kinds = kinds_of(result, rig)
    assert result.returncode == 0 and set(kinds.values()) == {"updated"}, result
    check_consistent(rig, result, before, after, published)
    canary_line = result.first_line(r"sync: v2ray: canary \(1/2\): ")
    pause_line = result.first_line(rf"sync: v2ray: pause {PAUSE} s before the next batch")
    batch_line = result.first_line(r"sync: v2ray: batch 1 \(2/2\): ")
    assert canary_line and pause_line and batch_line, result
    assert [line for _, line in result.lines].count(pause_line[1]) == 1, result  # none after the last batch
    assert batch_line[0] - pause_line[0] >= PAUSE - 0.1, result
    canary = canary_line[1].rsplit(": ", 1)[1].strip()
    batch = [h.strip() for h in batch_line[1].rsplit(": ", 1)[1].split(",")]
    assert sorted([canary, *batch]) == sorted(rig.host_names), result
    events = dict(zip(rig.host_names, [timed_events(h, wall(result.started), wall(result.finished))
                                       for h in rig.hosts], strict=True))
    started = [at for at, action, name in events[canary] if action == "start" and name == V2RAY]
    assert started, events[canary]
    first_of_batch = min(at for host in batch for at, _, _ in events[host][:1])
    gap = first_of_batch - started[-1]
    assert gap >= PAUSE, (gap, events)
    record(rig, f"14 pause: {PAUSE} between batches (canary 1, batch 3)", result, before, after,
           rig.answered(result, rig.host_names), f"the batch's first event {gap:.1f} s after the canary's start")


def test_15_without_rollback_the_hosts_moved_keep_the_new_release(rig: Rig) -> None:
    """`rollback: false`: a failure in the second batch leaves the canary on the new release (updated, its old
    container tidied), the failed host on its old container (its own switch puts it back), the rest not reached."""
    canary = rig.canary or rig.host_names[0]
    published = rig.publish("bad", "bad-no-rollback")
    rig.markers(on=[h for h in rig.host_names if h != canary])
    try:
        before, result, after = synced_with(rig, tag="bad-no-rollback",
                                            rollout="rollout: {canary: 1, batch: 1, rollback: false}\n")
    finally:
        rig.markers(on=[])
    failed = [failed_in_second_batch(rig, result, canary, "updated")]
    assert "rolling back" not in result.stderr, result
    old, new = running_ids(before, V2RAY), running_ids(after, V2RAY)
    moved = (after[canary] or {}).get(V2RAY)
    assert moved is not None and moved.state == "running" and new[canary] != old[canary], (canary, after[canary])
    assert moved.digest == published.digests[rig.host(canary).arch], (canary, moved)
    assert all(new[h] == old[h] and old[h] is not None for h in rig.host_names if h != canary), (old, new)
    kept(rig, before, after, SPARE)
    assert leftover_previous(after) == [], leftover_previous(after)
    record(rig, "15 rollback: false, failure in the second batch", result, before, after,
           rig.answered(result, rig.host_names), f"failed at {failed[0]}; {canary} keeps the new release")
    # The fleet file names the release the canary runs: the next sync moves the rest (the markers are gone).
    rig.tag = "bad-no-rollback"
    rig.write()
    repair = sync(rig.path)
    assert repair.returncode == 0, repair
    assert hosts_with(kinds_of(repair, rig), "no changes") == [canary], repair


# ------------------------------------------------------------------------------------------------------------
# Failures after the stop: the docker client on every host refuses a command the switch needs (the canary meets it
# first); the old container runs again under its name, or the host says the put-back failed.


def test_16_a_rename_refused_after_the_stop_starts_the_old_container_again(rig: Rig) -> None:
    """`docker rename` fails once the old container is stopped (the name taken, the engine restarting): the switch
    starts the old container where it is, by id, and the canary's reason says what failed."""
    rig.publish("good", "rename-refused")
    with docker_refusing(rig.hosts, "rename"):
        result = canary_failure(rig, "16 rename refused after the stop", ("could not keep",), tag="rename-refused")
    assert result.statuses[rig.canary or ""] == (
        f"FAILED: v2ray: could not keep {V2RAY} as {V2RAY}-previous: {REFUSAL} (docker rename)"), result
    assert f"[{rig.canary}] the old {V2RAY} runs again" in result.stderr, result
    assert "rolling back" not in result.stderr, result  # nothing moved before the canary


def test_17_a_put_back_that_fails_too_is_reported_as_such(rig: Rig) -> None:
    """`docker rename` and `docker start` both fail: the old container, stopped, cannot be started again. The canary
    is FAILED with both reasons (not rolled back), its old container is still there by id, stopped, with no
    `-previous` beside it; every other host keeps its containers by id. Once the client works again, the next sync
    starts that same container (no new one) and the one after changes nothing."""
    rig.publish("good", "put-back-refused")
    with docker_refusing(rig.hosts, "rename", "start"):
        before, result, after = synced_with(rig, tag="put-back-refused")
    kinds = kinds_of(result, rig)
    assert result.returncode == 1, result
    failed = hosts_with(kinds, "FAILED")
    assert len(failed) == 1 and hosts_with(kinds, "not reached") == sorted(set(rig.host_names) - set(failed)), result
    canary = failed[0]
    assert result.statuses[canary] == (
        f"FAILED: v2ray: could not keep {V2RAY} as {V2RAY}-previous: {REFUSAL} (docker rename); put-back failed: "
        f"could not start {V2RAY} again: {REFUSAL} (docker start)"), result
    assert "rolling back" not in result.stderr and f"{V2RAY} runs again" not in result.stderr, result
    check_total(result, len(rig.hosts))
    old, new = running_ids(before, V2RAY), running_ids(after, V2RAY)
    stopped = (after[canary] or {}).get(V2RAY)
    assert stopped is not None and stopped.id == old[canary] and stopped.state == "exited", (canary, after[canary])
    assert {h: i for h, i in new.items() if h != canary} == {h: i for h, i in old.items() if h != canary}, (old, new)
    assert leftover_previous(after) == [], leftover_previous(after)
    kept(rig, before, after, SPARE)
    touched = rig.touched(wall(result.started), wall(result.finished))
    assert {h: e for h, e in touched.items() if h != canary and e} == {}, "only the canary is touched"
    rig.write()
    repair = sync(rig.path)
    assert repair.returncode == 0, repair
    assert {h: s for h, s in repair.statuses.items() if s != "no changes"} == {canary: "updated: v2ray (start)"}, (
        repair)
    repaired = rig.snapshot()
    kept(rig, before, repaired, V2RAY)
    again = sync(rig.path)
    assert again.returncode == 0 and set(again.kinds().values()) == {"no changes"}, again
    rig.canary = canary
    record(rig, "17 rename and start refused (put-back fails)", result, before, after,
           rig.answered(result, rig.host_names), f"{canary}: FAILED, put-back failed; the next sync starts the same "
           "container")


def test_18_a_stop_that_fails_leaves_the_old_container_running(rig: Rig) -> None:
    """`docker stop` fails: the switch goes no further, the old container runs on (it is started, a no-op for a
    running container), by id, on every host; no container event anywhere."""
    rig.publish("good", "stop-refused")
    with docker_refusing(rig.hosts, "stop"):
        before, result, after = synced_with(rig, tag="stop-refused")
    kinds = kinds_of(result, rig)
    assert result.returncode == 1, result
    failed = hosts_with(kinds, "FAILED")
    assert len(failed) == 1 and hosts_with(kinds, "not reached") == sorted(set(rig.host_names) - set(failed)), result
    assert result.statuses[failed[0]] == f"FAILED: v2ray: could not stop {V2RAY}: {REFUSAL} (docker stop)", result
    assert f"[{failed[0]}] the old {V2RAY} runs again" in result.stderr, result
    check_total(result, len(rig.hosts))
    kept(rig, before, after, V2RAY)
    kept(rig, before, after, SPARE)
    assert leftover_previous(after) == [], leftover_previous(after)
    touched = rig.touched(wall(result.started), wall(result.finished))
    assert {h: e for h, e in touched.items() if e} == {}, touched
    record(rig, "18 stop refused", result, before, after, rig.answered(result, rig.host_names),
           f"failed at {failed[0]}; nothing stopped")


# On a host: the SSH session that runs the switch script (its nearest `sshd:` ancestor) is killed, so the connection
# drops as a network failure drops it and nobody reads the script's output any more. Prints the killed pid.
DROP_SWITCH_CONNECTION = r"""
pid=$(ps -eo pid=,args= | awk '/[a]rchfleet-switch/ {print $1; exit}')
[ -n "$pid" ] || { echo "no switch script runs" >&2; exit 3; }
while [ "$pid" -gt 1 ]; do
  pid=$(ps -o ppid= -p "$pid" | tr -d ' ')
  case "$(ps -o args= -p "$pid")" in sshd:*) kill -9 "$pid" && echo "$pid"; exit ;; esac
done
echo "no sshd session above the switch script" >&2; exit 4
"""


def runs_alone(host: LabHost, container_id: str) -> bool:
    """The host runs the v2ray container ``container_id`` and has no `-previous` beside it."""
    found = host_containers(host) or {}
    current = found.get(V2RAY)
    return (current is not None and current.id == container_id and current.state == "running"
            and f"{V2RAY}-previous" not in found)


def test_19_a_connection_lost_mid_switch_leaves_the_host_to_put_its_old_container_back(rig: Rig) -> None:
    """The SSH session of a host's switch is killed while the switch waits for the new container's health (a bad
    build: it never gets healthy there). The sync fails that host; the script, whose output nobody reads any more,
    still ends its switch: the old container runs again by id, with no `-previous` beside it, and the next sync
    changes nothing anywhere."""
    host = rig.host(rig.canary or rig.host_names[0])
    try:
        published, before, run, mid = bad_switch_seen(rig, "connection-lost", host)
        try:
            dropped = in_lab_host(host, "sh", "-c", DROP_SWITCH_CONNECTION)
            assert dropped.returncode == 0, dropped
            result = run.finish()
        except BaseException:
            run.abandon()
            raise
        wait_until(f"{host.name} runs its old {V2RAY} again, alone", lambda: runs_alone(host, mid.previous.id),
                   timeout=120)
    finally:
        rig.write()
        rig.markers(on=[])
    after = rig.snapshot()
    kinds = kinds_of(result, rig)
    assert result.returncode == 1 and kinds[host.name] == "FAILED", result
    assert "health" not in result.statuses[host.name].lower(), result  # it failed by its connection, not its check
    assert set(kinds.values()) <= {"FAILED", "rolled back", "not reached"}, result
    kept(rig, before, after, V2RAY)
    kept(rig, before, after, SPARE)
    assert leftover_previous(after) == [], leftover_previous(after)
    again = sync(rig.path)
    assert again.returncode == 0 and set(again.kinds().values()) == {"no changes"}, again
    record(rig, "19 connection lost mid-switch", result, before, after, rig.answered(result, rig.host_names),
           f"{host.name}: {result.statuses[host.name]}; its old container back by itself "
           f"{time.monotonic() - result.finished:.1f} s after the sync ended; {published.tag.rsplit(':', 1)[1]}")
