"""The fault-matrix harness for the lab tests of safe rollouts.

- what runs where: every archfleet container on every lab host, by id, read from each host's own engine;
- `ProxyWatch`: a local v2ray client per host and a page on this machine, fetched through every host's proxy
  again and again while a sync runs, so "the service answered throughout" is measured, not assumed;
- `SyncRun`: `archfleet sync` in the background, its progress lines timestamped, so a test can act (stop the
  registry, kill or pause a host) at a given point of a rollout;
- the faults: a blob deleted from the registry's storage, the registry stopped, a lab host killed or paused, a
  docker client that refuses some commands on a host (`docker_refusing`);
- test images built FROM an image already in the registry with no RUN step (no emulation for arm64).

Everything here talks to this machine and the lab's own containers only.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from archfleet.lab.state import LabHost, LabPaths, LabState, state_dir
from archfleet.lab.v2ray_client import client_config_text, free_port
from tests.lab.support import BIN, PROJECT

SERVICE_LABEL = "archfleet.service"
DIGEST_LABEL = "archfleet.digest"
# Container events that are not a change of the container: health checks run as execs.
QUIET_EVENTS = ("exec_create", "exec_start", "exec_die", "health_status", "top", "attach", "detach", "resize",
                "export", "copy", "archive-path", "extract-to-dir")


# ------------------------------------------------------------------------------------------------------------
# What runs where


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    state: str  # running, exited, created, ...
    health: str  # healthy, unhealthy, starting, or "" without a health check
    started_at: str
    service: str
    digest: str  # the image digest archfleet pinned (its label)


def in_lab_host(host: LabHost, *command: str, timeout: float = 60,
                input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command inside a lab host (docker exec into its container; no SSH, so no part of what is tested);
    ``input_text``: its stdin."""
    return subprocess.run(["docker", "exec", *(["-i"] if input_text is not None else []), host.container, *command],
                          capture_output=True, text=True, input=input_text, timeout=timeout, check=False)


def host_containers(host: LabHost) -> dict[str, Container] | None:
    """The host's archfleet containers by name (None when the host is down or paused: killed or frozen)."""
    # The whole inspect document (a --format template trips over a container without a health check when it
    # inspects several at once: "map has no entry for key Health").
    script = (f"ids=$(docker ps -aq --filter label={SERVICE_LABEL}) || exit 3; "
              "if [ -z \"$ids\" ]; then echo '[]'; else docker inspect $ids; fi")
    for _ in range(3):
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.Status}}", host.container], capture_output=True,
                               text=True, check=False).stdout.strip()
        if state != "running":
            return None
        try:
            result = in_lab_host(host, "sh", "-c", script, timeout=120)
        except subprocess.TimeoutExpired:
            continue
        if result.returncode == 0:
            break
        time.sleep(1)  # a container removed between `ps` and `inspect`: ask again
    else:
        raise AssertionError(f"{host.name}: cannot list its containers: {result.stderr}")
    found = {}
    for inspected in json.loads(result.stdout):
        name, state, labels = inspected["Name"].lstrip("/"), inspected["State"], inspected["Config"]["Labels"] or {}
        health = (state.get("Health") or {}).get("Status", "")
        found[name] = Container(inspected["Id"][:12], name, state["Status"], health, state["StartedAt"],
                                labels.get(SERVICE_LABEL, ""), labels.get(DIGEST_LABEL, ""))
    return found


def fleet_containers(hosts: list[LabHost]) -> dict[str, dict[str, Container] | None]:
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        return dict(zip([h.name for h in hosts], pool.map(host_containers, hosts), strict=True))


def running_ids(snapshot: dict[str, dict[str, Container] | None], name: str) -> dict[str, str | None]:
    """host -> id of the RUNNING container called ``name`` (None if it is missing or not running)."""
    ids: dict[str, str | None] = {}
    for host, containers in snapshot.items():
        container = (containers or {}).get(name)
        ids[host] = container.id if container and container.state == "running" else None
    return ids


def leftover_previous(snapshot: dict[str, dict[str, Container] | None]) -> list[str]:
    """`archfleet-*-previous` containers still on any host (a rollout that did not clean up)."""
    return sorted(f"{host}: {c.name} ({c.state})" for host, containers in snapshot.items()
                  for c in (containers or {}).values() if c.name.endswith("-previous"))


def container_events(host: LabHost, since: float, until: float) -> list[str]:
    """Container events on the host's engine between two times of this machine's clock (the lab hosts share its
    kernel), leaving out health-check execs: "ACTION NAME" lines."""
    return [f"{action} {name}" for _, action, name in timed_events(host, since, until)]


def timed_events(host: LabHost, since: float, until: float) -> list[tuple[float, str, str]]:
    """Container events on the host's engine between two times of this machine's clock (the lab hosts share its
    kernel), leaving out health-check execs: (wall-clock time, action, container name), in order."""
    result = in_lab_host(host, "docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                         "--filter", "type=container",
                         "--format", "{{.TimeNano}} {{.Action}} {{.Actor.Attributes.name}}")
    assert result.returncode == 0, result.stderr
    found = []
    for line in result.stdout.splitlines():
        nanos, action, name = [*line.split(" ", 2), "", ""][:3]
        if action and not action.rstrip(":").startswith(QUIET_EVENTS):
            found.append((int(nanos) / 1e9, action.rstrip(":"), name))
    return found


# ------------------------------------------------------------------------------------------------------------
# The service answering: a page fetched through each host's v2ray proxy, all along


class _WhoAsked(http.server.BaseHTTPRequestHandler):
    """Answers with the address that asked: a page fetched through a host's proxy names that host."""

    def do_GET(self) -> None:
        body = f"reached from {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass(frozen=True)
class Probe:
    host: str
    sent: float
    ok: bool


@dataclass(repr=False)
class ProxyWatch:
    """Fetch a page from this machine through every host's v2ray proxy every ``period`` seconds (one local v2ray
    client per host, curl over its SOCKS port), recording each answer. A probe is ok only when the page came back
    fetched by that host itself."""

    hosts: list[LabHost]
    vmess_id: str
    page_host: str  # the lab's gateway: an address of this machine the lab hosts reach
    workdir: Path
    port: int = 10086
    period: float = 0.5
    probes: list[Probe] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _clients: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self.page = http.server.ThreadingHTTPServer((self.page_host, 0), _WhoAsked)
        threading.Thread(target=self.page.serve_forever, daemon=True).start()
        for host in self.hosts:
            socks = free_port()
            config = self.workdir / f"v2ray-watch-{host.name}.json"
            fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(client_config_text(host.address, self.port, self.vmess_id, socks))
            self._clients.append(subprocess.Popen(["v2ray", "-config", str(config)], stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.DEVNULL))
            thread = threading.Thread(target=self._watch, args=(host, socks), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _watch(self, host: LabHost, socks: int) -> None:
        url = f"http://{self.page_host}:{self.page.server_port}/"
        while not self._stop.is_set():
            sent = time.monotonic()
            fetched = subprocess.run(
                ["curl", "-s", "--max-time", "3", "--socks5-hostname", f"127.0.0.1:{socks}", url],
                capture_output=True, text=True, check=False,
            )
            with self._lock:
                self.probes.append(Probe(host.name, sent, fetched.stdout == f"reached from {host.address}\n"))
            self._stop.wait(max(0.0, self.period - (time.monotonic() - sent)))

    def __repr__(self) -> str:
        return f"ProxyWatch({len(self.probes)} probes of {', '.join(h.name for h in self.hosts)})"

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for client in self._clients:
            client.terminate()
            client.wait(timeout=10)
        self.page.shutdown()
        for config in self.workdir.glob("v2ray-watch-*.json"):
            config.unlink()

    def of(self, host: str, since: float, until: float | None = None) -> list[Probe]:
        with self._lock:
            return [p for p in self.probes if p.host == host and p.sent >= since and (until is None or p.sent <= until)]

    def answering(self, hosts: list[str], timeout: float = 60) -> None:
        """Wait until a probe of each of ``hosts`` sent from now on is ok."""
        since = time.monotonic()
        deadline = since + timeout
        waiting = list(hosts)
        while waiting and time.monotonic() < deadline:
            waiting = [h for h in waiting if not any(p.ok for p in self.of(h, since))]
            time.sleep(0.1)
        assert not waiting, f"the v2ray proxy did not answer within {timeout:.0f} s on {', '.join(waiting)}"

    def outages(self, host: str, since: float, until: float) -> list[tuple[float, float | None]]:
        """(first failed probe, first ok probe after it) per outage; None when it had not answered again."""
        found: list[tuple[float, float | None]] = []
        down: float | None = None
        for probe in self.of(host, since, until):
            if not probe.ok and down is None:
                down = probe.sent
            elif probe.ok and down is not None:
                found.append((down, probe.sent))
                down = None
        if down is not None:
            found.append((down, None))
        return found


# ------------------------------------------------------------------------------------------------------------
# A sync running in the background


SUMMARY_KINDS = ("no changes", "updated", "would change", "rolled back", "not reached", "FAILED")


def status_kind(status: str) -> str:
    """The kind of a summary status: no changes, updated, would change, rolled back, not reached or FAILED."""
    for kind in SUMMARY_KINDS:
        if status.startswith(kind):
            return kind
    raise AssertionError(f"not a status of the output contract: {status!r}")


@dataclass(repr=False)
class SyncResult:
    returncode: int
    stdout: str
    stderr: str
    lines: list[tuple[float, str]]  # stderr lines with the monotonic time each arrived
    started: float
    finished: float

    @property
    def statuses(self) -> dict[str, str]:
        """host -> its summary status (the `sync<TAB>HOST<TAB>STATUS` lines)."""
        found = {}
        for line in self.stdout.splitlines():
            if line.startswith("sync\t"):
                _, host, status = line.split("\t", 2)
                found[host] = status
        return found

    def kinds(self) -> dict[str, str]:
        return {host: status_kind(status) for host, status in self.statuses.items()}

    @property
    def total(self) -> str:
        totals = [line for line in self.stdout.splitlines() if line.startswith("sync: ")]
        assert len(totals) == 1, f"expected one total line:\n{self.stdout}"
        return totals[0]

    def first_line(self, pattern: str) -> tuple[float, str] | None:
        for moment, line in self.lines:
            if re.search(pattern, line):
                return moment, line
        return None

    def __repr__(self) -> str:
        """What an assertion message shows: the exit, the summary, the end of the progress."""
        return (f"exit {self.returncode} after {self.finished - self.started:.1f} s\n--- stdout\n{self.stdout}"
                f"--- stderr (last 6000)\n{self.stderr[-6000:]}")


class SyncRun:
    """``archfleet sync -f FLEET ARGS`` started now; ``wait_for`` a progress line, then ``finish``."""

    def __init__(self, fleet: Path, *args: str):
        self.started = time.monotonic()
        self.lines: list[tuple[float, str]] = []
        self._new_line = threading.Condition()
        # Only the fleet's servers: the lab may also hold hosts other modules added (workstation-1, spot-1).
        limit = () if "--limit" in args else ("--limit", "amd64,arm64")
        self.process = subprocess.Popen(
            [str(BIN / "archfleet"), "sync", "-f", str(fleet), *limit, *args], cwd=PROJECT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._stdout: list[str] = []
        self._readers = [threading.Thread(target=self._read_stderr, daemon=True),
                         threading.Thread(target=self._read_stdout, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._new_line:
                self.lines.append((time.monotonic(), line))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        self._stdout.append(self.process.stdout.read())

    def wait_for(self, pattern: str, timeout: float = 300) -> tuple[float, str]:
        """The first progress line matching ``pattern`` (a regex), waiting for it."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._new_line:
            while True:
                for moment, line in self.lines[seen:]:
                    if re.search(pattern, line):
                        return moment, line
                seen = len(self.lines)
                if self.process.poll() is not None and not self._readers[0].is_alive():
                    raise AssertionError(f"the sync ended before printing /{pattern}/:\n"
                                         + "".join(line for _, line in self.lines)[-4000:])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no progress line /{pattern}/ within {timeout:.0f} s")
                self._new_line.wait(min(remaining, 1.0))

    def abandon(self) -> None:
        """Kill the sync (a case that fails while it runs; the next case's repair puts the hosts back)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def finish(self, timeout: float = 600) -> SyncResult:
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the sync did not end within {timeout:.0f} s (it hangs):\n"
                                 + "".join(line for _, line in self.lines)[-4000:]) from None
        finished = time.monotonic()
        for reader in self._readers:
            reader.join(timeout=10)
        return SyncResult(returncode, "".join(self._stdout), "".join(line for _, line in self.lines),
                          list(self.lines), self.started, finished)


def sync(fleet: Path, *args: str, timeout: float = 600) -> SyncResult:
    return SyncRun(fleet, *args).finish(timeout)


# ------------------------------------------------------------------------------------------------------------
# Test images


@dataclass(frozen=True)
class PublishedImage:
    tag: str  # REGISTRY/REPO:TAG, the multi-arch tag
    digests: dict[str, str]  # arch -> image manifest digest
    layers: dict[str, list[str]]  # arch -> the image manifest's layer digests (last: this build's own layer)


def publish_test_image(lab: LabState, repository: str, build: str, tag: str, base: dict[str, str],
                       arches: tuple[str, ...] = ("amd64", "arm64"), payload_bytes: int = 64,
                       user: str | None = None) -> PublishedImage:
    """Build ``repository`` FROM ``base[arch]`` for each arch with no RUN step (no emulation), with a layer of its
    own (``/faults-build``: the build name and ``payload_bytes`` random bytes, so every build has a layer no other
    image shares), ENV FAULTS_BUILD=build, and move the multi-arch tag ``tag`` to it."""
    ref = f"{lab.registry.address}/{repository}:{tag}"
    digests: dict[str, str] = {}
    layers: dict[str, list[str]] = {}
    for arch in arches:
        with tempfile.TemporaryDirectory() as context:
            (Path(context) / "faults-build").write_bytes(build.encode() + b"\n" + os.urandom(payload_bytes))
            dockerfile = (f"FROM {base[arch]}\nENV FAULTS_BUILD={build}\nCOPY faults-build /faults-build\n"
                          + (f"USER {user}\n" if user else ""))
            (Path(context) / "Dockerfile").write_text(dockerfile)
            subprocess.run(["docker", "build", "-q", "--platform", f"linux/{arch}", "-t", f"{ref}-{arch}", context],
                           text=True, check=True, capture_output=True)
        subprocess.run(["docker", "push", "-q", f"{ref}-{arch}"], check=True, capture_output=True)
        manifest = json.loads(subprocess.run(["docker", "manifest", "inspect", f"{ref}-{arch}"], check=True,
                                             capture_output=True, text=True).stdout)
        layers[arch] = [layer["digest"] for layer in manifest["layers"]]
    subprocess.run(["docker", "manifest", "rm", ref], capture_output=True, check=False)
    subprocess.run(["docker", "manifest", "create", ref, *(f"{ref}-{a}" for a in arches)], check=True,
                   capture_output=True)
    subprocess.run(["docker", "manifest", "push", "--purge", ref], check=True, capture_output=True)
    index = json.loads(subprocess.run(["docker", "manifest", "inspect", ref], check=True, capture_output=True,
                                      text=True).stdout)
    for entry in index["manifests"]:
        digests[entry["platform"]["architecture"]] = entry["digest"]
    return PublishedImage(ref, digests, layers)


# ------------------------------------------------------------------------------------------------------------
# Faults


def lab_paths() -> LabPaths:
    return LabPaths(state_dir())


def delete_layer_from_registry(repository: str, layer_digest: str) -> Path:
    """Make the registry answer "blob unknown" for one layer of ``repository`` (its manifests still list it): the
    repository's link to the blob goes. Returns the removed link's directory."""
    algorithm, hex_digest = layer_digest.split(":", 1)
    link = (lab_paths().registry_data / "docker" / "registry" / "v2" / "repositories" / repository / "_layers"
            / algorithm / hex_digest)
    assert (link / "link").exists(), f"no layer link {link}"
    shutil.rmtree(link)
    return link


@contextmanager
def paused(host: LabHost) -> Iterator[None]:
    """The host's container frozen: its sshd accepts TCP (the kernel answers) and never says a word."""
    subprocess.run(["docker", "pause", host.container], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["docker", "unpause", host.container], check=False, capture_output=True)


def kill_host(host: LabHost) -> None:
    """The host dies at once (SIGKILL to its init: every process on it, its containers too)."""
    subprocess.run(["docker", "kill", host.container], check=True, capture_output=True)


@dataclass(frozen=True)
class MidSwitch:
    """A host seen in the middle of its switch of one container."""

    new: Container  # the release's container: created and started, not proven healthy
    previous: Container  # the old container: stopped and kept as NAME-previous
    seen: float  # when (monotonic)


def wait_mid_switch(host: LabHost, name: str, old_id: str, digest: str, ended: Callable[[], bool],
                    timeout: float = 300) -> MidSwitch:
    """Wait until ``host`` is in the middle of its switch of container ``name``: the old container ``old_id``
    stopped and kept as NAME-previous, and a new one from ``digest`` running but not healthy (the switch script is
    waiting for its health). ``ended()``: the sync is over (it will never be seen)."""
    deadline = time.monotonic() + timeout
    while True:
        found = host_containers(host) or {}
        new, previous = found.get(name), found.get(f"{name}-previous")
        if (new is not None and previous is not None and previous.id == old_id and previous.state != "running"
                and new.id != old_id and new.digest == digest and new.state == "running"):
            assert new.health != "healthy", f"{host.name}: {name} was healthy before it was seen mid-switch: {new}"
            return MidSwitch(new, previous, time.monotonic())
        assert not ended(), f"the sync ended before {host.name} was seen mid-switch: {found}"
        assert time.monotonic() < deadline, f"{host.name} not seen mid-switch within {timeout:.0f} s: {found}"
        time.sleep(0.1)


def wait_until(what: str, check: Callable[[], object], timeout: float, interval: float = 0.2) -> None:
    """Poll ``check()`` until it returns something true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


# A docker client that refuses: the real client's place on a lab host's PATH is /usr/bin (Debian's docker.io), and
# /usr/local/bin comes before it for a login over SSH and under sudo alike (and for `docker exec` into the host).
REAL_DOCKER = "/usr/bin/docker"
REFUSING_DOCKER = "/usr/local/bin/docker"
REFUSAL = "Error response from daemon: refused by the fault matrix"


def refusing_docker_script(subcommands: tuple[str, ...]) -> str:
    """A `docker` that fails ``docker SUBCOMMAND`` (one line on stderr, exit 1, as the engine's refusals look) for
    each of ``subcommands`` and runs the real client for everything else."""
    return (f"#!/bin/sh\ncase \"$1\" in\n  {'|'.join(subcommands)})\n"
            f"    echo \"{REFUSAL} (docker $1)\" >&2; exit 1 ;;\nesac\nexec {REAL_DOCKER} \"$@\"\n")


@contextmanager
def docker_refusing(hosts: list[LabHost], *subcommands: str) -> Iterator[None]:
    """On every host, `docker SUBCOMMAND` fails for each of ``subcommands`` (a client earlier on PATH than the real
    one, which runs every other command), until the block ends."""
    script = refusing_docker_script(subcommands)
    try:
        for host in hosts:
            placed = in_lab_host(host, "sh", "-c", f"test -x {REAL_DOCKER} && test ! -e {REFUSING_DOCKER} && "
                                 f"cat > {REFUSING_DOCKER} && chmod 0755 {REFUSING_DOCKER} && "
                                 f"docker {subcommands[0]} 2>&1 | grep -qF '{REFUSAL}'", input_text=script)
            assert placed.returncode == 0, f"{host.name}: the refusing docker client is not in place: {placed}"
        yield
    finally:
        remove_refusing_docker(hosts)


def remove_refusing_docker(hosts: list[LabHost]) -> None:
    for host in hosts:
        subprocess.run(["docker", "exec", host.container, "rm", "-f", REFUSING_DOCKER], capture_output=True,
                       check=False)
