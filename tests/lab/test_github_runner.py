"""End to end on the lab: the GitHub Actions runner service (images/github-runner), against stand-ins for what is out
of reach here (github.com and the runner release): tests/standins/github_api.py on the lab gateway and the stand-in
release tests/standins/github-runner-release-standin/ it serves as a tarball with its sha256.

The image is built by `archfleet images build` from the stand-in release's URL and sha256 (build args, checked before
unpacking), the services are synced with a fine-grained token as a root-only secret (the entrypoint reads it as
root; the runner and its jobs run as `runner`, without capabilities or a way back), and then:
a job for `ARM64` runs on the arm64 host and prints `aarch64`, one for `X64` prints `x86_64`; an ephemeral runner
registers afresh with a fresh token after its job and after a restart; a job that tries to read the token's file
(or to become root) fails; stopping the service deregisters the runner; no token shows in any process's argv
(sampled all along), in `docker inspect`, in logs or in a readable file.

The amd64 runner uses bridge networking, as on real hosts; the arm64 host's engine runs under QEMU without a bridge
(LAB-NOTES), so its runner uses the host's network.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from archfleet.lab.state import LabHost, LabState
from tests.lab.faults import in_lab_host, sync
from tests.lab.github_runner_fleet import github_standin, runner_image, runner_service
from tests.lab.support import HostBootstrap, archfleet, fleet_header
from tests.lab.test_secret_safety import container_bytes, files_holding, host_root, readable_by_others
from tests.standins.github_api import GitHubStandin, Runner

pytestmark = pytest.mark.lab

LABELS = "archfleet,lab"
ARCH_LABEL = {"amd64": "X64", "arm64": "ARM64"}
MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}


def fleet_text(standin: GitHubStandin, token_file: Path) -> str:
    services = "services:\n" + "".join(
        runner_service(f"github-runner-{arch}", arch, network, standin, token_file, LABELS,
                       runner_name='"{{ host.name }}"')
        for arch, network in (("amd64", "bridge"), ("arm64", "host")))
    return fleet_header() + runner_image(standin) + services


class ArgvWatch:
    """Every process's argv on this machine (each lab host's processes among them), read again and again; keeps
    what holds a token the stand-in handed out. (Environments are not read: the registration token reaches
    config.sh through its environment, by design.)"""

    def __init__(self, standin: GitHubStandin):
        self.standin = standin
        self.found: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            tokens = [t.encode() for t in self.standin.tokens()]
            for pid in os.listdir("/proc"):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes() if pid.isdigit() else b""
                except OSError:
                    continue
                if any(t in argv for t in tokens):
                    shown = argv.replace(b"\0", b" ")[:300]
                    self.found.append(f"pid {pid}: {shown!r}")
            self.samples += 1
            self._stop.wait(0.02)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class Rig:
    lab: LabState
    standin: GitHubStandin
    fleet: Path
    argv: ArgvWatch

    def host(self, arch: str) -> LabHost:
        return self.lab.hosts_of(arch)[0]

    def runner_of(self, arch: str) -> Runner | None:
        name = self.host(arch).name
        return next((r for r in self.standin.runners() if r.name == name), None)

    def wait_registered(self, arch: str, other_than: Runner | None = None, timeout: float = 120) -> Runner:
        name = self.host(arch).name
        old = other_than.id if other_than else None
        self.standin.wait_for(lambda: any(r.name == name and r.id != old for r in self.standin.registry.values()),
                              timeout, f"runner {name} registered" + (" afresh" if other_than else ""))
        runner = self.runner_of(arch)
        assert runner is not None
        return runner

    def docker(self, arch: str, *args: str) -> str:
        result = in_lab_host(self.host(arch), "docker", *args, timeout=120)
        assert result.returncode == 0, (arch, args, result.stderr)
        return result.stdout


def remove_runners(lab: LabState) -> None:
    for arch in ARCH_LABEL:
        in_lab_host(lab.hosts_of(arch)[0], "sh", "-c", f"docker rm -f archfleet-github-runner-{arch} >/dev/null 2>&1; "
                                                       f"rm -rf /etc/archfleet/services/github-runner-{arch}")


@pytest.fixture(scope="module")
def rig(lab: LabState, tmp_path_factory: pytest.TempPathFactory, host_bootstrap: HostBootstrap) -> Iterator[Rig]:
    directory = tmp_path_factory.mktemp("github-runner")
    with github_standin(lab.gateway, directory) as (standin, token_file):
        argv = ArgvWatch(standin)
        argv.start()
        fleet = directory / "fleet.yaml"
        fleet.write_text(fleet_text(standin, token_file))
        try:
            host_bootstrap.ensure()
            remove_runners(lab)
            archfleet("images", "build", "-f", str(fleet), check=True)
            yield Rig(lab, standin, fleet, argv)
        finally:
            remove_runners(lab)
            argv.stop()


@pytest.fixture(scope="module")
def synced(rig: Rig) -> Rig:
    first = sync(rig.fleet)
    assert first.returncode == 0, first
    second = sync(rig.fleet)
    assert second.returncode == 0 and set(second.statuses.values()) == {"no changes"}, second
    for arch in ARCH_LABEL:
        rig.wait_registered(arch)
    return rig


def test_each_runner_registers_with_its_architecture_and_the_fleet_labels(synced: Rig) -> None:
    for arch, label in ARCH_LABEL.items():
        runner = synced.runner_of(arch)
        assert runner is not None and runner.ephemeral, synced.standin.runners()
        assert runner.labels == ["self-hosted", "linux", label, *LABELS.split(",")], runner


def test_a_job_runs_on_the_runner_of_its_architecture(synced: Rig) -> None:
    for arch, label in ARCH_LABEL.items():
        job = synced.standin.wait_job(synced.standin.queue_job(["self-hosted", label], "uname -m"), timeout=120)
        assert (job.runner, job.exit_code, job.output) == (synced.host(arch).name, 0, MACHINE[arch] + "\n"), job


def test_an_ephemeral_runner_registers_afresh_after_its_job_and_after_a_restart(synced: Rig) -> None:
    for arch, label in ARCH_LABEL.items():
        name = f"archfleet-github-runner-{arch}"
        before = synced.wait_registered(arch)
        restarts = int(synced.docker(arch, "inspect", "-f", "{{.RestartCount}}", name))
        job = synced.standin.wait_job(synced.standin.queue_job([label, "archfleet"], "echo done"), timeout=120)
        assert job.runner == synced.host(arch).name and job.exit_code == 0, job
        after_job = synced.wait_registered(arch, other_than=before)
        assert int(synced.docker(arch, "inspect", "-f", "{{.RestartCount}}", name)) == restarts + 1
        synced.docker(arch, "restart", name)
        after_restart = synced.wait_registered(arch, other_than=after_job)
        assert after_job.id not in {r.id for r in synced.standin.runners()}  # deregistered on the way down
        tokens = [before.registered_with, after_job.registered_with, after_restart.registered_with]
        assert len(set(tokens)) == 3, tokens  # each registration minted its own token
        minted = {m.token: m for m in synced.standin.minted}
        assert all(minted[t].kind == "registration" and minted[t].used_by == job.runner for t in tokens)


MOUNT = "/run/secrets/github-token"
# What a hostile workflow would try: read the credential's file, become root (sudo, su), read the memory of the
# root entrypoint that read it; and what it runs as.
THIEF_JOB = (f"id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; cat {MOUNT}; echo cat=$?; "
             f"sudo -n cat {MOUNT}; echo sudo=$?; su -c 'cat {MOUNT}' root </dev/null; echo su=$?; "
             "root=0 read=0; for pid in /proc/[0-9]*; do [ \"$(stat -c %u $pid 2>/dev/null)\" = 0 ] || continue; "
             "root=$((root + 1)); if cat $pid/environ >/dev/null 2>&1; then read=$((read + 1)); fi; done; "
             "echo root_processes=$root read=$read")


def test_the_secret_is_root_only_and_a_job_cannot_read_it(synced: Rig) -> None:
    for arch, label in ARCH_LABEL.items():
        name = f"archfleet-github-runner-{arch}"
        stat = synced.docker(arch, "exec", name, "stat", "-c", "%u:%g %a", MOUNT)
        assert stat.strip() == "0:0 400", (arch, stat)
        as_runner = container_bytes(synced.host(arch), name, MOUNT, user="runner")
        assert as_runner.returncode != 0 and b"Permission denied" in as_runner.stderr, (arch, as_runner)
        job = synced.standin.wait_job(synced.standin.queue_job(["self-hosted", label], THIEF_JOB), timeout=120)
        assert job.output is not None, job
        lines = job.output.splitlines()
        assert job.runner == synced.host(arch).name and lines[:2] == ["1000", "1000"], job
        assert "CapEff:\t0000000000000000" in lines and "CapBnd:\t0000000000000000" in lines, job.output
        assert "NoNewPrivs:\t1" in lines, job.output
        assert f"cat: {MOUNT}: Permission denied" in lines and "cat=1" in lines, job.output
        assert "cat=0" not in lines and "sudo=0" not in lines and "su=0" not in lines, job.output
        roots = [line for line in lines if line.startswith("root_processes=")]
        assert len(roots) == 1 and roots[0].endswith(" read=0") and roots[0] != "root_processes=0 read=0", job.output
        assert synced.standin.pat not in job.output, arch
        synced.wait_registered(arch)  # the ephemeral runner's next registration, for the tests after this one


def test_no_token_in_argv_inspect_logs_or_readable_files(synced: Rig) -> None:
    standin = synced.standin
    runners = [r.credential for r in [*standin.registry.values(), *standin.removed]]
    tokens = [t for t in standin.tokens() if t not in runners]  # the runner's own credential lives in .credentials
    assert len(tokens) >= 6 and synced.argv.samples > 100, (len(tokens), synced.argv.samples)
    assert synced.argv.found == [], "a token in a process's argv:\n" + "\n".join(synced.argv.found)
    for arch in ARCH_LABEL:
        name = f"archfleet-github-runner-{arch}"
        logs = in_lab_host(synced.host(arch), "sh", "-c", f"docker logs {name} 2>&1").stdout
        seen = synced.docker(arch, "inspect", name) + logs
        assert "registered runner" in logs and not [t for t in tokens if t in seen], arch
        root = host_root(synced.host(arch))
        holders = files_holding(tokens, [root / d for d in ("etc", "tmp", "var", "root", "run", "home", "opt")])
        expected = root / "etc" / "archfleet" / "services" / f"github-runner-{arch}"
        assert [str(p) for p in holders if expected not in p.parents] == [], arch  # only the PAT's own file
        assert len(holders) == 1 and not readable_by_others(holders[0], root), (arch, holders)


def test_stopping_the_service_deregisters_the_runner(synced: Rig) -> None:
    for arch in ARCH_LABEL:
        runner = synced.wait_registered(arch)
        synced.docker(arch, "stop", f"archfleet-github-runner-{arch}")
        assert synced.runner_of(arch) is None, synced.standin.runners()
        assert any(r.id == runner.id for r in synced.standin.removed)
        removal = synced.standin.minted[-1]
        assert (removal.kind, removal.used_by) == ("remove", runner.name), removal
        state = json.loads(synced.docker(arch, "inspect", "-f", "{{json .State}}", f"archfleet-github-runner-{arch}"))
        assert state["ExitCode"] == 143, state  # it ended on SIGTERM, after deregistering (not killed at 10 s)
    again = sync(synced.fleet)  # the next sync starts them again, and they register
    assert again.returncode == 0, again
    for arch in ARCH_LABEL:
        synced.wait_registered(arch)

