"""`archfleet verify` against the lab: exit 0 for a fleet that runs as declared, exit 1 with the reason on the one
row that breaks it, exit 2 for a fleet file without `services:`.

Each failure is made on a host as it happens in life: the container stopped or removed by hand, a container of the
service's name run from the other architecture's image or from a build that is not the pinned digest, and an image
whose config says amd64 while its binaries are arm64 (what `docker import` of an arm64 root file system records on
an amd64 machine): `uname -m` inside is the only thing that tells. After each case a finalizer puts the host back
(the tampered container removed, one sync), so no case depends on another's leftovers.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from archfleet.lab.images import base_image
from archfleet.lab.state import LabHost, LabState
from archfleet.placement import container_name
from archfleet.services.desired import short
from tests.lab.faults import DIGEST_LABEL, SERVICE_LABEL, PublishedImage, in_lab_host, publish_test_image
from tests.lab.support import LAB_INVENTORY, HostBootstrap, archfleet

pytestmark = pytest.mark.lab

PLAIN_REPO = "archfleet-test/verify-plain"
LYING_REPO = "archfleet-test/verify-lying"
PLAIN = "plain"  # runs on the amd64 and the arm64 host
LYING = "lying"  # its image says amd64, its binaries are arm64 (a fleet file of its own)
COMMAND = "[sh, -c, \"trap 'exit 0' TERM; sleep infinity & wait\"]"
TIMEOUTS = "timeouts: {connect: 20, facts: 60, pull: 120, start: 20, health: 40, run: 900}\n"
# What the lying image holds: enough of an arm64 Debian to run `sleep` and `uname`.
ARM64_FILES = ("/usr/bin/sleep", "/usr/bin/uname", "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
               "/usr/lib/aarch64-linux-gnu/libc.so.6")


@dataclass
class Proven:
    lab: LabState
    directory: Path
    amd64: LabHost
    arm64: LabHost
    one: PublishedImage  # the release the fleet file pins
    two: PublishedImage  # another build of the same repository

    @property
    def path(self) -> Path:
        return self.directory / "fleet.yaml"

    @property
    def limit(self) -> str:
        return f"{self.amd64.name},{self.arm64.name}"

    def verify(self, path: Path | None = None) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
        result = archfleet("verify", "--json", "-f", str(path or self.path), "--limit", self.limit)
        rows = json.loads(result.stdout)["rows"] if result.stdout.strip() else []
        return result, rows

    def sync(self, path: Path | None = None, limit: str | None = None) -> None:
        result = archfleet("sync", "-f", str(path or self.path), "--limit", limit or self.limit)
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]

    def replace(self, host: LabHost, image: str, pinned: str, *args: str) -> None:
        """The service's container on ``host`` replaced by hand: ``image`` (pulled by digest), labelled as if
        archfleet had pinned ``pinned``."""
        name = container_name(PLAIN)
        script = (f"docker pull -q {' '.join(args)} {image} >/dev/null && docker rm -f {name} >/dev/null && "
                  f"docker run -d --name {name} --network host --label {SERVICE_LABEL}={PLAIN} "
                  f"--label {DIGEST_LABEL}={pinned} {' '.join(args)} {image} sleep infinity")
        done = in_lab_host(host, "sh", "-c", script, timeout=300)
        assert done.returncode == 0, done.stderr


def fleet_text(registry: str, services: str) -> str:
    return f"registry: {{lab: true}}\ninventory: {LAB_INVENTORY}\n{TIMEOUTS}services:\n{services}"


def plain_service(registry: str) -> str:
    return (f"  {PLAIN}:\n    image: {registry}/{PLAIN_REPO}:one\n    groups: [amd64, arm64]\n"
            f"    command: {COMMAND}\n")


def clear(hosts: list[LabHost]) -> None:
    for host in hosts:
        in_lab_host(host, "sh", "-c", f"docker rm -f {container_name(PLAIN)} {container_name(LYING)}; "
                                      f"rm -rf /etc/archfleet/services/{PLAIN} /etc/archfleet/services/{LYING}")


@pytest.fixture(scope="module")
def proven(lab: LabState, tmp_path_factory: pytest.TempPathFactory,
           host_bootstrap: HostBootstrap) -> Iterator[Proven]:
    amd64, arm64 = lab.hosts_of("amd64")[0], lab.hosts_of("arm64")[0]
    directory = tmp_path_factory.mktemp("verify")
    try:
        host_bootstrap.ensure()
        base = {arch: base_image(arch) for arch in ("amd64", "arm64")}
        one = publish_test_image(lab, PLAIN_REPO, "verify-one", "one", base)
        two = publish_test_image(lab, PLAIN_REPO, "verify-two", "two", base)
        state = Proven(lab, directory, amd64, arm64, one, two)
        state.path.write_text(fleet_text(lab.registry.address, plain_service(lab.registry.address)))
        state.sync()
        yield state
    finally:
        clear([amd64, arm64])


@pytest.fixture
def put_back(proven: Proven) -> Iterator[LabHost]:
    """The amd64 host, on which a case tampers with the service; afterwards the tampered container goes and one
    sync puts the declared one back (a failed case too)."""
    yield proven.amd64
    clear([proven.amd64])
    proven.sync(limit=proven.amd64.name)


def rows_by_host(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["host"], r["service"]): r for r in rows}


def assert_only_failure(proven: Proven, result: subprocess.CompletedProcess[str], rows: list[dict[str, Any]],
                        host: LabHost, state: str, reason: str) -> None:
    """Exit 1; the row of PLAIN on ``host`` fails with exactly ``reason``; every other row is ok."""
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    by = rows_by_host(rows)
    assert set(by) == {(proven.amd64.name, PLAIN), (proven.arm64.name, PLAIN)}, rows
    broken = by[(host.name, PLAIN)]
    assert (broken["verdict"], broken["state"], broken["reason"]) == ("FAIL", state, reason), broken
    assert all(r["verdict"] == "ok" and r["reason"] == "" for k, r in by.items() if k != (host.name, PLAIN)), rows
    assert "verify: 1 problem(s) on 1 host(s)" in result.stderr, result.stderr


def test_a_fleet_that_runs_as_declared_is_proven(proven: Proven) -> None:
    result, rows = proven.verify()
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    by = rows_by_host(rows)
    for host, machine in ((proven.amd64, "x86_64"), (proven.arm64, "aarch64")):
        row = by[(host.name, PLAIN)]
        assert (row["verdict"], row["state"], row["image_platform"], row["inner_machine"], row["digest"]) == (
            "ok", "running", f"linux/{host.arch}", machine, short(proven.one.digests[host.arch])), row


def test_a_stopped_container_fails(proven: Proven, put_back: LabHost) -> None:
    stopped = in_lab_host(put_back, "docker", "stop", container_name(PLAIN))
    assert stopped.returncode == 0, stopped.stderr
    result, rows = proven.verify()
    assert_only_failure(proven, result, rows, put_back, "exited", "container is exited")


def test_a_missing_container_fails(proven: Proven, put_back: LabHost) -> None:
    removed = in_lab_host(put_back, "docker", "rm", "-f", container_name(PLAIN))
    assert removed.returncode == 0, removed.stderr
    result, rows = proven.verify()
    assert_only_failure(proven, result, rows, put_back, "missing", "no container")


def test_the_other_architectures_image_fails(proven: Proven, put_back: LabHost) -> None:
    """The amd64 host runs the arm64 image of the pinned release (it runs, under emulation)."""
    arm64 = proven.one.digests["arm64"]
    proven.replace(put_back, f"{proven.one.tag.rsplit(':', 1)[0]}@{arm64}", arm64, "--platform", "linux/arm64")
    result, rows = proven.verify()
    assert_only_failure(proven, result, rows, put_back, "running",
                        "image is linux/arm64, host is linux/amd64; uname -m inside is aarch64, host says x86_64")


def test_an_image_that_is_not_the_pinned_digest_fails(proven: Proven, put_back: LabHost) -> None:
    """The amd64 host runs another build of the repository under the service's name and pinned label."""
    pinned, other = proven.one.digests["amd64"], proven.two.digests["amd64"]
    proven.replace(put_back, f"{proven.two.tag.rsplit(':', 1)[0]}@{other}", pinned)
    result, rows = proven.verify()
    assert_only_failure(proven, result, rows, put_back, "running",
                        f"the image is not the pinned digest {short(pinned)}")


def lying_image(proven: Proven) -> PublishedImage:
    """A multi-arch tag with one entry, linux/amd64 by its config, whose binaries are arm64: a tag archfleet's
    pre-flight accepts (it reads configs), and a host runs (binfmt)."""
    local = "archfleet-test/verify-lying-base:amd64"
    with tempfile.TemporaryDirectory() as context:
        created = subprocess.run(["docker", "create", "--platform", "linux/arm64", base_image("arm64"), "true"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        try:
            for path in ARM64_FILES:
                (Path(context) / "root" / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(["docker", "cp", "-L", f"{created}:{path}", f"{context}/root{path}"], check=True,
                               capture_output=True)
        finally:
            subprocess.run(["docker", "rm", created], capture_output=True, check=False)
        (Path(context) / "root" / "bin").symlink_to("usr/bin")
        (Path(context) / "root" / "lib").symlink_to("usr/lib")
        (Path(context) / "root" / "usr" / "lib" / "ld-linux-aarch64.so.1").symlink_to(
            "aarch64-linux-gnu/ld-linux-aarch64.so.1")
        (Path(context) / "Dockerfile").write_text("FROM scratch\nCOPY root/ /\n")
        subprocess.run(["docker", "build", "-q", "--platform", "linux/amd64", "-t", local, context], check=True,
                       capture_output=True)
    return publish_test_image(proven.lab, LYING_REPO, "verify-lying", "one", {"amd64": local}, arches=("amd64",))


def test_an_image_whose_binaries_are_not_its_platforms_fails_on_uname(proven: Proven, put_back: LabHost) -> None:
    """Platform and digest are as pinned; only `uname -m` inside the container says it is not an amd64 image."""
    published = lying_image(proven)
    platform = subprocess.run(["docker", "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}",
                               f"{published.tag}-amd64"], capture_output=True, text=True, check=True).stdout.strip()
    assert platform == "linux/amd64", platform
    lying = proven.directory / "lying.yaml"
    lying.write_text(fleet_text(proven.lab.registry.address,
                                f"  {LYING}:\n    image: {published.tag}\n    groups: [amd64]\n"
                                "    command: [sleep, infinity]\n"))
    proven.sync(path=lying, limit=put_back.name)
    result = archfleet("verify", "--json", "-f", str(lying), "--limit", put_back.name)
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    rows = json.loads(result.stdout)["rows"]
    assert [(r["host"], r["service"], r["state"], r["image_platform"], r["verdict"], r["reason"]) for r in rows] == [
        (put_back.name, LYING, "running", "linux/amd64", "FAIL", "uname -m inside is aarch64, host says x86_64")
    ], rows


@pytest.mark.parametrize("text", ["", "NO_SERVICES"], ids=["empty", "no-services-key"])
def test_a_fleet_file_without_services_is_refused(proven: Proven, text: str) -> None:
    path = proven.directory / "no-services.yaml"
    path.write_text(f"registry: {{lab: true}}\ninventory: {LAB_INVENTORY}\n" if text == "NO_SERVICES" else text)
    result = archfleet("verify", "-f", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "", result.stdout
    assert str(path) in result.stderr, result.stderr
    if text == "NO_SERVICES":  # an empty file already lacks `registry:`
        assert "no `services:` section" in result.stderr and "nothing was changed" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
