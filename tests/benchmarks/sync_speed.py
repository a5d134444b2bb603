"""Benchmark: how close `archfleet sync` comes to SSH itself, next to Ansible, on the same lab hosts in one run.
Prints figures (and writes them as JSON with --json-out); asserts nothing about time.

    .venv/bin/python -m tests.benchmarks.sync_speed [--hosts 4,16,32] [--runs 5] [--ansible-runs 3]
        [--skip-ansible] [--skip-first-sync] [--first-sync-runs 3] [--first-sync-health-interval 30] [--before BIN]
        [--json-out FILE] [--down]

It runs on a lab of its own (network archfleet-bench, 172.28.82.0/24, state in /var/lib/archfleet/bench) unless
ARCHFLEET_LAB_NETWORK / ARCHFLEET_LAB_SUBNET / ARCHFLEET_LAB_DIR say otherwise. For each N (ascending) it scales that
lab to N amd64 hosts (no arm64), bootstraps them (deploys/host.py), publishes v2ray (amd64 only), then measures:

- first sync: every host loses its v2ray container, image and files; the floor is N parallel `docker pull REPO@DIGEST`
  of the platform's digest over SSH (images removed again after it), then `archfleet sync` of N fresh hosts, in
  --first-sync-runs pairs (the registry's pace varies from run to run: the ratio is the median of the pairs'); bytes
  pulled per host are eth0 rx_bytes of the host before/after, next to the image's compressed size in the registry
  (config + layers of the platform's manifest);
- no-op (v2ray checking its health every HEALTH_INTERVAL s; with --first-sync-health-interval, after an untimed
  sync has recreated it with that), paired and interleaved per run: the floor (N parallel `ssh HOST true` with
  archfleet's ssh options: the lab key, the lab's known_hosts, StrictHostKeyChecking=yes), `archfleet sync` as a
  user runs it again and again (each run the whole pipeline: load, read every host and tag, plan), and
  `ansible-playbook` of tests/benchmarks/ansible/playbook.yml
  (community.docker.docker_container declaring the very container archfleet runs, pipelining on, N forks, same key
  and known_hosts; Ansible 12 in its own virtualenv, a yardstick only);
- with ``--before BIN`` (another checkout's ``archfleet`` console script, e.g. a worktree of an earlier commit with
  its own venv), that archfleet's no-op sync in the same interleaved runs: before and after, paired;
- SSH per host in a no-op: connections and commands (sessions) each host's sshd logged (LogLevel VERBOSE on the lab
  hosts), for the floor (the counter's own check: 1 and 1), archfleet and Ansible.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from archfleet.lab.hosts import ssh_argv
from archfleet.lab.state import LabHost, LabPaths, LabState, load, state_dir
from archfleet.tasks.apt_commands import apt_install, apt_update
from tests.benchmarks.ansible import inventory as ansible_inventory
from tests.lab.support import BIN, LAB_INVENTORY, PROJECT, archfleet, pyinfra

T = TypeVar("T")

# The benchmark's own lab, unless the environment names another: it scales the lab and wipes its hosts' images.
BENCH_LAB = {
    "ARCHFLEET_LAB_NETWORK": "archfleet-bench",
    "ARCHFLEET_LAB_SUBNET": "172.28.82.0/24",
    "ARCHFLEET_LAB_DIR": "/var/lib/archfleet/bench",
}

ANSIBLE_VENV = Path(os.environ.get("ARCHFLEET_BENCH_ANSIBLE_VENV", "/var/cache/archfleet/bench-ansible-venv"))
ANSIBLE_REQUIREMENT = "ansible>=12,<13"
SERVICE = "v2ray"
REPOSITORY = "archfleet/v2ray"
TAG = "4.34"
PLATFORM = "linux/amd64"
ARCHFLEET_BIN = str(BIN / "archfleet")
CONTAINER_TASK = "Service container runs the pinned image with the declared spec"  # its name in playbook.yml

FLEET = """\
registry: {{lab: true}}
inventory: {inventory}
images:
  debian: {{local_image: 'archfleet-lab/debian:bookworm-{{arch}}', repository: archfleet/debian, tag: bookworm,
           platforms: [linux/amd64]}}
  v2ray: {{context: {project}/images/v2ray, repository: archfleet/v2ray, tag: '4.34', platforms: [linux/amd64],
          build_args: {{BASE_IMAGE: '{{registry}}/archfleet/debian:bookworm'}}}}
services:
  v2ray:
    image: v2ray
    groups: [amd64]
    ports: [10086]
    files: [{{template: {project}/deploys/templates/v2ray/config.json.j2, mount: /etc/v2ray/config.json}}]
    vars: {{port: 10086}}
    secrets: {{vmess_id: {{file: vmess-id, generate: uuid}}}}
    healthcheck: {{command: "bash -c 'echo > /dev/tcp/127.0.0.1/10086'", interval: {interval}, retries: 20}}
"""
# v2ray's health check interval, in seconds: Docker's default. A rollout does not wait for Docker's first check (one
# whole interval after the start on Docker 20.10, Debian 12's): it runs the check itself (tasks/service_commands.py,
# `wait_ready`). Every 2 s (archfleet's default) on 16 or 32 hosts sharing this machine's 2 cores would be 8 to 16
# `docker exec`-like checks a second, about 60 ms of CPU each: a quarter of the machine or more, taken from the
# floor and the syncs alike (in a real fleet each host checks on its own CPU). --first-sync-health-interval 2
# measures the first sync with it anyway.
HEALTH_INTERVAL = 30
# sshd logs each connection and each session (a command, a shell, a subsystem) at VERBOSE.
SSHD_VERBOSE = (
    "f=/etc/ssh/sshd_config.d/archfleet-bench.conf; "
    "if ! grep -qx 'LogLevel VERBOSE' \"$f\" 2>/dev/null; then echo 'LogLevel VERBOSE' > \"$f\"; "
    "kill -HUP \"$(cat /run/sshd.pid)\"; fi"
)
# A fresh host for a first sync: the service's containers and files gone, and every image the host's engine holds
# (amd64-1 also builds the images, so it would keep the base layers otherwise).
FRESH_HOST = (
    "docker ps -aq --filter label=archfleet.service={service} | xargs -r docker rm -f >/dev/null; "
    "docker image prune -af >/dev/null; rm -rf /etc/archfleet/services/{service}"
)


def write_fleet(fleet: Path, health_interval: int) -> None:
    fleet.write_text(FLEET.format(inventory=LAB_INVENTORY, project=PROJECT, interval=health_interval))


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float | None:
    """The median of numerator / denominator within each run (measured back to back: the machine's load cancels)."""
    return median([n / d for n, d in zip(numerators, denominators, strict=False)])


# --- the lab's hosts -------------------------------------------------------------------------------------------


def host_ssh(state: LabState, host: LabHost, command: str) -> list[str]:
    return ssh_argv(LabPaths(state_dir()), state.ssh_user, host.address, command)


def on_all(state: LabState, hosts: list[LabHost], command: str, timeout: float = 600) -> list[str]:
    """Run a shell command on every host over SSH in parallel; stdout per host; one failure stops the benchmark."""
    def one(host: LabHost) -> str:
        result = subprocess.run(host_ssh(state, host, command), capture_output=True, text=True, timeout=timeout,
                                check=False)
        if result.returncode != 0:
            raise SystemExit(f"bench: {host.name}: `{command[:80]}` failed: {result.stderr.strip()[-500:]}")
        return result.stdout

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        return list(pool.map(one, hosts))


def parallel_wall(argvs: list[list[str]], timeout: float = 900) -> float:
    """Start every command at once, wait for all: the wall time. A failure stops the benchmark."""
    started = time.monotonic()
    processes = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for argv in argvs]
    for argv, process in zip(argvs, processes, strict=True):
        _, stderr = process.communicate(timeout=timeout)
        if process.returncode != 0:
            raise SystemExit(f"bench: `{' '.join(argv[-2:])}` failed: {stderr.strip()[-500:]}")
    return time.monotonic() - started


def rx_bytes(hosts: list[LabHost]) -> dict[str, int]:
    """Bytes each host's eth0 received so far, read with docker exec (no traffic on the host's network)."""
    def one(host: LabHost) -> int:
        result = subprocess.run(["docker", "exec", host.container, "cat", "/sys/class/net/eth0/statistics/rx_bytes"],
                                capture_output=True, text=True, check=True)
        return int(result.stdout)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip([h.name for h in hosts], pool.map(one, hosts), strict=True))


@dataclass
class SshCount:
    """Per host: SSH connections accepted and sessions (commands, shells, subsystems) started, from sshd's log."""

    connections: list[int]
    sessions: list[int]

    def text(self) -> str:
        def spread(values: list[int]) -> str:
            low, high = min(values), max(values)
            return str(low) if low == high else f"{low}-{high}"
        return f"{spread(self.sessions)} command(s), {spread(self.connections)} connection(s)"


def count_ssh(hosts: list[LabHost], action: Callable[[], object]) -> SshCount:
    """Run ``action`` and count, per host, what sshd logged meanwhile."""
    time.sleep(1.1)
    since = f"{time.time():.3f}"
    action()
    time.sleep(1.1)
    until = f"{time.time():.3f}"

    def one(host: LabHost) -> tuple[int, int]:
        log = subprocess.run(["docker", "logs", "--since", since, "--until", until, host.container],
                             capture_output=True, text=True, check=True)
        text = log.stdout + log.stderr
        return len(re.findall(r"Accepted publickey", text)), len(re.findall(r"Starting session:", text))

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(one, hosts))
    return SshCount([c for c, _ in counts], [s for _, s in counts])


# --- the registry ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformImage:
    reference: str  # REGISTRY/REPO@DIGEST
    compressed_size: int  # config + layers, as the registry stores them


def platform_image(state: LabState, repository: str, tag: str, platform: str) -> PlatformImage:
    """The platform's entry of the tag's index, read from the registry directly (not through archfleet's client)."""
    context = ssl.create_default_context(cafile=state.registry.ca_cert)
    credentials = base64.b64encode(f"{state.registry.username}:{state.registry_password()}".encode()).decode()

    def manifest(reference: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"https://{state.registry.address}/v2/{repository}/manifests/{reference}",
            headers={"Authorization": f"Basic {credentials}", "Accept": ", ".join([
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
            ])},
        )
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            document: dict[str, Any] = json.loads(response.read())
        return document

    os_name, architecture = platform.split("/")[:2]
    index = manifest(tag)
    digest = next(entry["digest"] for entry in index["manifests"]
                  if entry["platform"]["os"] == os_name and entry["platform"]["architecture"] == architecture)
    image = manifest(digest)
    size = image["config"]["size"] + sum(layer["size"] for layer in image["layers"])
    return PlatformImage(f"{state.registry.address}/{repository}@{digest}", size)


# --- archfleet and Ansible ---------------------------------------------------------------------------------------


def timed_archfleet_sync(fleet: Path, expect_no_changes: bool, binary: str = ARCHFLEET_BIN,
                         *extra: str, expect_updated: bool = False) -> float:
    """The wall time of ``archfleet sync -f FLEET EXTRA``. ``expect_updated``: every host must say it was updated
    (a first sync)."""
    started = time.monotonic()
    result = subprocess.run([binary, "sync", "-f", str(fleet), *extra], cwd=PROJECT, capture_output=True, text=True,
                            check=False)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"bench: archfleet sync failed (exit {result.returncode}):\n{result.stdout}"
                         f"{result.stderr[-3000:]}")
    statuses = [line.split("\t")[2] for line in result.stdout.splitlines() if line.count("\t") >= 2]
    if expect_no_changes and (not statuses or any(status != "no changes" for status in statuses)):
        raise SystemExit(f"bench: a no-op archfleet sync changed something:\n{result.stdout}")
    if expect_updated and (not statuses or any(not status.startswith("updated") for status in statuses)):
        raise SystemExit(f"bench: a first sync left a host not updated:\n{result.stdout}")
    return wall


def ensure_ansible() -> Path:
    """Ansible 12 (ansible-core 2.19, community.docker bundled) in its own virtualenv, kept between runs."""
    playbook = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not playbook.exists():
        say(f"installing {ANSIBLE_REQUIREMENT} into {ANSIBLE_VENV} (a yardstick, not a project dependency)")
        subprocess.run(["python3", "-m", "venv", str(ANSIBLE_VENV)], check=True)
        subprocess.run([str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", ANSIBLE_REQUIREMENT], check=True)
    return playbook


@dataclass
class AnsibleRecap:
    changed: int
    failed: int  # failed + unreachable

    @classmethod
    def parse(cls, output: str) -> AnsibleRecap:
        rows = re.findall(r"^\S+\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M)
        if not rows:
            raise SystemExit(f"bench: no PLAY RECAP in Ansible's output:\n{output[-3000:]}")
        return cls(sum(int(r[0]) for r in rows), sum(int(r[1]) + int(r[2]) for r in rows))


class AnsibleYardstick:
    """ansible-playbook of playbook.yml over the lab's hosts, declaring the container archfleet runs there."""

    def __init__(self, state: LabState, hosts: list[LabHost], directory: Path) -> None:
        self.playbook = ensure_ansible()
        self.directory = directory
        say(f"Ansible: python3 and python3-requests on {len(hosts)} host(s) (what docker_container needs)")
        packages = apt_install(["python3", "python3-requests"])
        on_all(state, hosts, "python3 -c 'import requests' 2>/dev/null || { "
               f"{apt_update().get_raw_value()} >/dev/null && {packages.get_raw_value()} >/dev/null; }}")
        self.config = ansible_inventory.write_project(
            directory, read_hosts(state, hosts), state.ssh_user, state.ssh_key, state.known_hosts)

    def run(self, *extra: str) -> tuple[float, str]:
        control = Path(tempfile.mkdtemp(prefix="cp-", dir=self.directory))
        env = {**os.environ, "ANSIBLE_CONFIG": str(self.config), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
               "ANSIBLE_NOCOLOR": "1"}
        started = time.monotonic()
        result = subprocess.run([str(self.playbook), str(ansible_inventory.PLAYBOOK), *extra], env=env,
                                capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        for socket in control.iterdir():  # end this run's ControlPersist masters
            subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "bench"], capture_output=True,
                           check=False)
        recap = AnsibleRecap.parse(result.stdout)
        if recap.failed or recap.changed:
            raise SystemExit(f"bench: Ansible was not a no-op (changed={recap.changed}, failed={recap.failed}):\n"
                             f"{result.stdout[-4000:]}")
        return wall, result.stdout

    def timed_noop(self) -> float:
        return self.run()[0]

    def timed_container_task_alone(self) -> float:
        """The docker_container task without the copy tasks before it: how much of Ansible's time is the files."""
        return self.run("--start-at-task", CONTAINER_TASK)[0]


def read_hosts(state: LabState, hosts: list[LabHost]) -> list[ansible_inventory.AnsibleHost]:
    """What archfleet created on each host: the container and its image (docker inspect), its managed files."""
    inspect = (f"c=$(docker ps -q --filter label=archfleet.service={SERVICE}); docker inspect \"$c\"; "
               "docker image inspect \"$(docker inspect --format '{{.Image}}' \"$c\")\"")
    result = []
    for host, output in zip(hosts, on_all(state, hosts, inspect), strict=True):
        decoder = json.JSONDecoder()
        containers, end = decoder.raw_decode(output)
        images, _ = decoder.raw_decode(output[end:].lstrip())
        sources = ansible_inventory.managed_sources(containers[0])
        files = [ansible_inventory.ManagedFileCopy(path, content.strip()) for path, content in zip(
            sources, on_all(state, [host], "; ".join(f"base64 -w0 {p}; echo" for p in sources))[0].splitlines(),
            strict=True)]
        result.append(ansible_inventory.AnsibleHost(
            host.name, host.address, ansible_inventory.container_options(containers[0], images[0]), files))
    return result


# --- one N -------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    hosts: int
    lab_up: float | None = None  # archfleet lab up to this many hosts (from the previous count)
    bootstrap: float | None = None  # deploys/host.py on every host (the new ones bare)
    floor_runs: list[float] = field(default_factory=list)
    archfleet_runs: list[float] = field(default_factory=list)
    before_runs: list[float] = field(default_factory=list)  # --before: an earlier archfleet, same runs
    ansible_runs: list[float] = field(default_factory=list)
    ansible_container_task_alone: float | None = None  # one run, the copy tasks skipped
    first_sync_runs: list[float] = field(default_factory=list)  # each paired with the parallel pull before it
    parallel_pull_runs: list[float] = field(default_factory=list)
    image_size: int | None = None
    pulled_by_archfleet: dict[str, int] = field(default_factory=dict)
    pulled_by_docker_pull: dict[str, int] = field(default_factory=dict)
    ssh_floor: SshCount | None = None
    ssh_archfleet: SshCount | None = None
    ssh_ansible: SshCount | None = None

    @property
    def floor(self) -> float | None:
        return median(self.floor_runs)

    @property
    def archfleet(self) -> float | None:
        return median(self.archfleet_runs)

    @property
    def ansible(self) -> float | None:
        return median(self.ansible_runs)

    @property
    def before(self) -> float | None:
        return median(self.before_runs)

    @property
    def first_sync(self) -> float | None:
        return median(self.first_sync_runs)

    @property
    def parallel_pull(self) -> float | None:
        return median(self.parallel_pull_runs)

    @property
    def first_sync_vs_pull(self) -> float | None:
        """The median of first sync / parallel pull within each pair (the registry's speed varies run to run)."""
        return paired_ratio(self.first_sync_runs, self.parallel_pull_runs)

    @property
    def before_vs_floor(self) -> float | None:
        return paired_ratio(self.before_runs, self.floor_runs)

    @property
    def archfleet_vs_floor(self) -> float | None:
        """The median of archfleet / floor within each run (the two ran back to back: the machine's load cancels)."""
        return paired_ratio(self.archfleet_runs, self.floor_runs)

    @property
    def ansible_vs_archfleet(self) -> float | None:
        return paired_ratio(self.ansible_runs, self.archfleet_runs)

    @property
    def pulled_per_host(self) -> float | None:
        return median(list(self.pulled_by_archfleet.values()))


def prepare_lab(row: Row, fleet: Path) -> tuple[LabState, list[LabHost]]:
    """Scale the lab to ``row.hosts`` amd64 hosts, bootstrap them, publish v2ray: the setup's times go in ``row``."""
    row.lab_up = timed(f"lab up --amd64 {row.hosts} --arm64 0",
                       lambda: archfleet("lab", "up", "--amd64", str(row.hosts), "--arm64", "0", check=True))[0]
    state = load()
    hosts = state.hosts_of("amd64")
    on_all(state, hosts, SSHD_VERBOSE)
    row.bootstrap, bootstrap = timed("host bootstrap (deploys/host.py)", lambda: pyinfra("deploys/host.py"))
    if bootstrap.returncode != 0:
        raise SystemExit(f"bench: host bootstrap failed:\n{bootstrap.output[-3000:]}")
    timed("images build (v2ray, amd64)", lambda: archfleet("images", "build", "-f", str(fleet), check=True))
    return state, hosts


SETTLE_SECONDS = 120  # at most, waiting for the machine to be quiet before a block of measurements


def settle(what: str) -> None:
    """Wait (at most SETTLE_SECONDS) until the 1-minute load average is below twice the CPU count: scaling the lab
    and bootstrapping hosts leave the machine busy for minutes, which would weigh on whatever is measured next."""
    quiet = 2 * (os.cpu_count() or 1)
    started = time.monotonic()
    while os.getloadavg()[0] >= quiet and time.monotonic() - started < SETTLE_SECONDS:
        time.sleep(5)
    say(f"{what}: load {os.getloadavg()[0]:.1f} after {time.monotonic() - started:.0f} s of waiting for it to fall "
        f"below {quiet}")


def measure_first_sync(row: Row, state: LabState, hosts: list[LabHost], fleet: Path, image: PlatformImage,
                       pairs: int) -> None:
    """``pairs`` times: N parallel `docker pull` of fresh hosts, then `archfleet sync` of the same hosts made fresh
    again (bytes: the last pair's)."""
    fresh = FRESH_HOST.format(service=SERVICE)
    on_all(state, hosts, fresh)
    settle("first sync")
    for pair in range(pairs):
        on_all(state, hosts, fresh)
        before = rx_bytes(hosts)
        row.parallel_pull_runs.append(
            parallel_wall([host_ssh(state, h, f"docker pull -q {image.reference}") for h in hosts]))
        after = rx_bytes(hosts)
        row.pulled_by_docker_pull = {name: after[name] - before[name] for name in before}
        on_all(state, hosts, fresh)
        before = rx_bytes(hosts)
        row.first_sync_runs.append(timed_archfleet_sync(fleet, expect_no_changes=False, expect_updated=True))
        after = rx_bytes(hosts)
        row.pulled_by_archfleet = {name: after[name] - before[name] for name in before}
        say(f"first sync {pair + 1}/{pairs}: {len(hosts)} parallel docker pull {row.parallel_pull_runs[-1]:.1f} s, "
            f"archfleet sync of {len(hosts)} fresh hosts {row.first_sync_runs[-1]:.1f} s (load "
            f"{os.getloadavg()[0]:.1f})")


def measure(count: int, runs: int, ansible_runs: int, first_sync: int, fleet: Path, work: Path,
            before: str | None = None, first_sync_health_interval: int = HEALTH_INTERVAL) -> Row:
    say(f"--- {count} host(s) ---")
    row = Row(count)
    state, hosts = prepare_lab(row, fleet)
    image = platform_image(state, REPOSITORY, TAG, PLATFORM)
    row.image_size = image.compressed_size
    if first_sync:
        measure_first_sync(row, state, hosts, fleet, image, first_sync)
    else:
        timed_archfleet_sync(fleet, expect_no_changes=False)  # whatever the hosts lack, untimed
    if first_sync_health_interval != HEALTH_INTERVAL:
        write_fleet(fleet, HEALTH_INTERVAL)
        say(f"no-op: v2ray recreated with a health check every {HEALTH_INTERVAL} s (untimed)")
        timed_archfleet_sync(fleet, expect_no_changes=False, expect_updated=True)
    timed_archfleet_sync(fleet, expect_no_changes=True)  # the first no-op, untimed (the hosts' page cache warm)
    floor_argvs = [host_ssh(state, h, "true") for h in hosts]
    ansible = None
    if ansible_runs:
        ansible = AnsibleYardstick(state, hosts, work / f"ansible-{count}")
        check = ansible.run("--check", "--diff")[1]
        say(f"Ansible --check: a no-op ({check.strip().splitlines()[-1].strip()})")
    settle("no-op")
    for run in range(runs):
        row.floor_runs.append(parallel_wall(floor_argvs))
        row.archfleet_runs.append(timed_archfleet_sync(fleet, True))
        if before:
            row.before_runs.append(timed_archfleet_sync(fleet, expect_no_changes=True, binary=before))
        if ansible and run < ansible_runs:
            row.ansible_runs.append(ansible.timed_noop())
        say(f"run {run + 1}/{runs}: floor {row.floor_runs[-1]:.2f} s, archfleet {row.archfleet_runs[-1]:.2f} s"
            + (f", before {row.before_runs[-1]:.2f} s" if before else "")
            + (f", Ansible {row.ansible_runs[-1]:.2f} s" if ansible and run < ansible_runs else "")
            + f" (load {os.getloadavg()[0]:.1f})")
    row.ssh_floor = count_ssh(hosts, lambda: parallel_wall(floor_argvs))
    row.ssh_archfleet = count_ssh(hosts, lambda: timed_archfleet_sync(fleet, expect_no_changes=True))
    if ansible:
        row.ssh_ansible = count_ssh(hosts, ansible.timed_noop)
        row.ansible_container_task_alone = ansible.timed_container_task_alone()
    say(f"SSH per host in a no-op: floor {row.ssh_floor.text()}; archfleet {row.ssh_archfleet.text()}"
        + (f"; Ansible {row.ssh_ansible.text()}" if row.ssh_ansible else ""))
    return row


# --- the report --------------------------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def ratio(numerator: float | None, denominator: float | None) -> str:
    return "-" if numerator is None or not denominator else f"{numerator / denominator:.2f}x"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def megabytes(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f} MB"


def print_table(rows: list[Row], out: TextIO = sys.stdout) -> None:
    header = ["N", "floor", "archfleet no-op", "ratio", "Ansible", "vs archfleet", "first sync", "parallel pull",
              "ratio", "pulled/host", "image", "ratio"]
    lines = [[
        str(r.hosts), seconds(r.floor), seconds(r.archfleet), times(r.archfleet_vs_floor), seconds(r.ansible),
        times(r.ansible_vs_archfleet), seconds(r.first_sync), seconds(r.parallel_pull),
        times(r.first_sync_vs_pull), megabytes(r.pulled_per_host), megabytes(r.image_size),
        ratio(r.pulled_per_host, r.image_size),
    ] for r in rows]
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(header)]
    print("  ".join(c.rjust(w) for c, w in zip(header, widths, strict=True)), file=out)
    for line in lines:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)), file=out)
    print("times: medians of the runs; ratio = archfleet / floor and vs archfleet = Ansible / archfleet: medians of "
          "the ratios within each run (paired), first sync / parallel pull likewise over the pairs; pulled/host = "
          "median of the hosts' eth0 rx bytes during the (last) first sync", file=out)
    for low, high in itertools.pairwise(rows):
        per_host = [f"{name} {slope(low, high, attribute)}" for name, attribute in (
            ("floor", "floor"), ("archfleet no-op", "archfleet"), ("Ansible", "ansible"),
            ("first sync", "first_sync"), ("parallel pull", "parallel_pull"))]
        print(f"each extra host, {low.hosts} -> {high.hosts}: {', '.join(per_host)}", file=out)
    for r in rows:
        counts = [f"{name} {count.text()}" for name, count in (
            ("floor", r.ssh_floor), ("archfleet", r.ssh_archfleet), ("Ansible", r.ssh_ansible)) if count]
        print(f"SSH per host in a no-op, {r.hosts} hosts: {'; '.join(counts)}", file=out)
        if r.ansible_container_task_alone is not None:
            print(f"Ansible, {r.hosts} hosts, the docker_container task alone (copy tasks skipped, one run): "
                  f"{seconds(r.ansible_container_task_alone)}", file=out)
        if r.before_runs:
            print(f"before (--before), {r.hosts} hosts: no-op {seconds(r.before)}, {times(r.before_vs_floor)} the "
                  f"floor (paired), against archfleet's {seconds(r.archfleet)}, {times(r.archfleet_vs_floor)}",
                  file=out)
        print(f"setup, {r.hosts} hosts: lab up {seconds(r.lab_up)}, host bootstrap {seconds(r.bootstrap)}", file=out)


def slope(low: Row, high: Row, attribute: str) -> str:
    a, b = getattr(low, attribute), getattr(high, attribute)
    return "-" if a is None or b is None else f"{(b - a) / (high.hosts - low.hosts) * 1000:+.0f} ms"


def json_document(rows: list[Row]) -> dict[str, Any]:
    return {"rows": [{
        **asdict(r), "floor": r.floor, "archfleet": r.archfleet, "ansible": r.ansible,
        "pulled_per_host": r.pulled_per_host, "archfleet_vs_floor": r.archfleet_vs_floor,
        "ansible_vs_archfleet": r.ansible_vs_archfleet, "before": r.before, "before_vs_floor": r.before_vs_floor,
    } for r in rows]}


def timed(label: str, action: Callable[[], T]) -> tuple[float, T]:
    started = time.monotonic()
    result = action()
    wall = time.monotonic() - started
    say(f"{label}: {wall:.1f} s")
    return wall, result


def host_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hosts: comma-separated host counts, not {text!r}") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("--hosts: counts of at least 1")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--hosts", type=host_counts, default=[4, 16, 32], help="amd64 host counts (default 4,16,32)")
    parser.add_argument("--runs", type=int, default=5, help="no-op runs of the floor and archfleet (default 5)")
    parser.add_argument("--ansible-runs", type=int, default=3, help="no-op runs of Ansible (default 3)")
    parser.add_argument("--skip-ansible", action="store_true", help="no Ansible yardstick")
    parser.add_argument("--skip-first-sync", action="store_true",
                        help="no first sync of fresh hosts (nor parallel pull): the no-op figures only")
    parser.add_argument("--first-sync-runs", type=int, default=3, help="pairs of parallel pull and first sync "
                                                                        "(default 3; the ratio is their median)")
    parser.add_argument("--first-sync-health-interval", type=int, default=HEALTH_INTERVAL, metavar="SECONDS",
                        help=f"v2ray's health check interval in the first syncs (default {HEALTH_INTERVAL}, as in the "
                             "no-op runs)")
    parser.add_argument("--before", metavar="BIN", help="an earlier archfleet console script, timed in the same "
                                                        "no-op runs (before/after, paired)")
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--down", action="store_true", help="take the benchmark's lab down afterwards")
    args = parser.parse_args(argv)
    for variable, value in BENCH_LAB.items():
        os.environ.setdefault(variable, value)
    say("lab: " + ", ".join(f"{k}={os.environ[k]}" for k in BENCH_LAB))
    # archfleet as a wheel installs it runs from bytecode; a checkout under PYTHONDONTWRITEBYTECODE=1 would compile
    # its sources on every run (about 40 ms of CPU), so they are compiled once here
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(PROJECT / "archfleet")], check=True)
    rows: list[Row] = []
    bench_dir = state_dir() / "benchmark"
    try:
        for count in args.hosts:
            bench_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fleet = bench_dir / "fleet.yaml"
            write_fleet(fleet, args.first_sync_health_interval)
            with tempfile.TemporaryDirectory(dir=bench_dir) as work:
                rows.append(measure(count, args.runs, 0 if args.skip_ansible else max(args.ansible_runs, 1),
                                    0 if args.skip_first_sync else args.first_sync_runs, fleet, Path(work),
                                    args.before, args.first_sync_health_interval))
            print_table(rows, sys.stderr)
            if args.json_out:
                args.json_out.write_text(json.dumps(json_document(rows), indent=2) + "\n")
    finally:
        if args.down:
            archfleet("lab", "down", check=True)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
