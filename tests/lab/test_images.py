"""End to end on the lab: build v2ray and the CI runner for amd64 and arm64 (arm64 natively on the arm64 host),
verify the published tags, prove each variant's main binary is an ELF for its machine (read from the published
layers), run each host's own variant, build again and see nothing rebuilt, and catch a tampered tag.

The images go to their own repositories (``archfleet-test/...``) with a per-run build arg, so every run really
builds and publishes (from the builders' layer cache when warm) and the fleet's own tags are left alone.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from archfleet.fleet.registry import RegistrySpec
from archfleet.images.verify import verify_tag
from archfleet.lab.state import LabState
from archfleet.platforms import Platform
from archfleet.registry_client import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    RegistryClient,
    manifest_list,
    resolve_platform_digests,
)
from tests.lab.support import PROJECT, archfleet, on_host, pyinfra

pytestmark = pytest.mark.lab

PLATFORMS = ("linux/amd64", "linux/arm64")
E_MACHINE = {"linux/amd64": 62, "linux/arm64": 183}  # ELF e_machine: EM_X86_64, EM_AARCH64
MAIN_BINARY = {"v2ray": "usr/bin/v2ray", "buildbot-worker": "usr/bin/python3.11"}


def fleet_text(run_id: str) -> str:
    images = PROJECT / "images"
    return f"""registry: {{lab: true}}
inventory: {PROJECT / "inventories" / "lab.py"}
images:
  debian:
    local_image: archfleet-lab/debian:bookworm-{{arch}}
    repository: archfleet-test/debian
    tag: bookworm
  v2ray:
    context: {images / "v2ray"}
    build_args: {{BASE_IMAGE: "{{registry}}/archfleet-test/debian:bookworm", ARCHFLEET_TEST_RUN: "{run_id}"}}
    repository: archfleet-test/v2ray
    tag: "4.34"
  buildbot-worker:
    context: {images / "buildbot-worker"}
    build_args: {{BASE_IMAGE: "{{registry}}/archfleet-test/debian:bookworm", ARCHFLEET_TEST_RUN: "{run_id}"}}
    repository: archfleet-test/buildbot-worker
    tag: "3.7"
"""


@pytest.fixture(scope="module")
def fleet(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "fleet.yaml"
    path.write_text(fleet_text(uuid.uuid4().hex[:12]))
    return path


@pytest.fixture(scope="module")
def client(lab: LabState) -> RegistryClient:
    return RegistryClient.for_spec(RegistrySpec(lab=True).resolve())


@pytest.fixture(scope="module")
def first_build(lab: LabState, fleet: Path) -> Iterator[tuple[str, str]]:
    started = time.monotonic()
    result = archfleet("images", "build", "-f", str(fleet), timeout=3600)
    print(f"\nfirst build: {time.monotonic() - started:.0f}s\n{result.stdout}")
    assert result.returncode == 0, result.stderr[-3000:]
    yield result.stdout, result.stderr
    for host in lab.hosts_of("amd64") + lab.hosts_of("arm64"):  # the builders' test tags (layers stay as cache)
        on_host(host, "docker images --format '{{.Repository}}:{{.Tag}}' | grep '/archfleet-test/' "
                      "| xargs -r docker rmi >/dev/null 2>&1; true")


def rows(stdout: str) -> dict[tuple[str, str], list[str]]:
    """The build table: (image, platform) -> [path, result, ...]."""
    table = {}
    for line in stdout.splitlines():
        words = line.split()
        if len(words) >= 4 and words[1].startswith("linux/"):
            table[(words[0], words[1])] = words[2:]
    return table


def test_build_arm64_natively_on_the_arm64_host_and_publish_one_tag(first_build: tuple[str, str]) -> None:
    stdout, stderr = first_build
    table = rows(stdout)
    for image in ("v2ray", "buildbot-worker"):
        assert table[(image, "linux/arm64")][:2] == ["arm64-1", "built"], stdout
        assert table[(image, "linux/amd64")][1] == "built", stdout
        assert table[(image, "linux/amd64")][0] != "emulated", stdout
        assert f"{image} linux/arm64: building natively on arm64-1 (builder host arm64-1 is linux/arm64)" in stderr
    assert "published: " in stdout and "archfleet-test/v2ray:4.34" in stdout


@pytest.mark.parametrize("image", ["v2ray", "buildbot-worker"])
def test_published_tags_verify(first_build: tuple[str, str], fleet: Path, image: str) -> None:
    result = archfleet("images", "verify", "-f", str(fleet), image)  # a fleet image's name: its published tag
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = {line.split()[0]: line.split()[-1] for line in result.stdout.splitlines()[2:]}
    assert verdicts == {"linux/amd64": "ok", "linux/arm64": "ok"}, result.stdout


def file_head(client: RegistryClient, repository: str, digest: str, path: str, length: int = 20) -> bytes:
    """The first bytes of a file in an image, read from its published layers (top layer first)."""
    manifest = client.manifest(repository, digest)
    for layer in reversed(manifest.json["layers"]):
        blob = client.blob(repository, layer["digest"])
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r|gz") as tar:
            for member in tar:
                if member.name.lstrip("./") == path and member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None
                    return handle.read(length)
    raise AssertionError(f"{path} is not in {repository}@{digest}")


@pytest.mark.parametrize("image", ["v2ray", "buildbot-worker"])
def test_main_binary_is_an_elf_for_each_platform(first_build: tuple[str, str], client: RegistryClient,
                                                 image: str) -> None:
    digests = resolve_platform_digests(client, f"archfleet-test/{image}:{'4.34' if image == 'v2ray' else '3.7'}")
    assert set(digests) == set(PLATFORMS)
    for platform, digest in digests.items():
        head = file_head(client, f"archfleet-test/{image}", digest, MAIN_BINARY[image])
        assert head[:4] == b"\x7fELF", (image, platform)
        assert int.from_bytes(head[18:20], "little") == E_MACHINE[platform], (image, platform)


@pytest.fixture(scope="module")
def hosts_logged_in(lab: LabState) -> None:
    """The hosts' engines trust the registry and are logged in (the host deploy; a no-op when they are)."""
    result = pyinfra("--limit", "amd64", "--limit", "arm64", "deploys/host.py")  # only the hosts used here
    assert result.returncode == 0, result.output[-3000:]


@pytest.mark.usefixtures("hosts_logged_in")
def test_each_host_runs_its_own_variant(first_build: tuple[str, str], lab: LabState, client: RegistryClient) -> None:
    tag = f"{client.address}/archfleet-test/v2ray:4.34"
    for host in lab.hosts_of("amd64")[:1] + lab.hosts_of("arm64")[:1]:
        result = on_host(host, f"docker pull -q {tag} >/dev/null && docker run --rm --network host {tag} -version; "
                               f"status=$?; docker rmi {tag} >/dev/null 2>&1; exit $status")
        assert result.returncode == 0, f"{host.name}: {result.stderr}"
        assert "V2Ray 4.34.0" in result.stdout and f"linux/{host.arch})" in result.stdout, result.stdout


@pytest.mark.usefixtures("hosts_logged_in")
def test_buildbot_worker_reads_its_password_from_the_file_only(first_build: tuple[str, str], lab: LabState,
                                                              client: RegistryClient) -> None:
    host = lab.hosts_of("amd64")[0]
    tag = f"{client.address}/archfleet-test/buildbot-worker:3.7"
    name = f"archfleet-test-worker-{uuid.uuid4().hex[:8]}"
    secret_dir = f"/tmp/{name}"
    start = on_host(host, (
        f"mkdir -m 700 {secret_dir} && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > {secret_dir}/pw && "
        f"docker run -d --name {name} --network host -e BUILDBOT_MASTER=127.0.0.1:9989 "
        f"-e BUILDBOT_WORKER_NAME=lab-worker -v {secret_dir}/pw:/run/secrets/buildbot-worker-password:ro {tag}"
    ))
    try:
        assert start.returncode == 0, start.stderr
        deadline = time.monotonic() + 120
        while True:
            probe = on_host(host, (
                f"cat {secret_dir}/pw; echo; docker exec {name} sh -c "
                "'cat /var/lib/buildbot/worker/buildbot.tac; for p in /proc/[0-9]*; do tr \"\\0\" \" \" "
                "< $p/cmdline; echo; done'; docker inspect --format '{{json .Config}}' " + name
            ))
            if "twistd" in probe.stdout or "buildbot-worker start" in probe.stdout or time.monotonic() > deadline:
                break
            time.sleep(2)
        password, rest = probe.stdout.split("\n", 1)
        assert len(password) == 32 and "passwd = secret.read().strip()" in rest, probe.stdout
        assert "'127.0.0.1', 9989, 'lab-worker'" in rest, rest
        assert password not in rest  # not in the tac, any process's command line, or the container's config
        assert "buildbot-worker start --nodaemon /var/lib/buildbot/worker" in rest, rest  # the worker runs
        assert "BUILDBOT_WORKER_NAME=lab-worker" in json.loads(rest.strip().splitlines()[-1])["Env"]
    finally:
        on_host(host, f"docker rm -f {name} >/dev/null 2>&1; rm -rf {secret_dir}; docker rmi {tag} >/dev/null 2>&1")


def test_second_build_changes_nothing(first_build: tuple[str, str], fleet: Path) -> None:
    started = time.monotonic()
    result = archfleet("images", "build", "-f", str(fleet))
    print(f"\nsecond build: {time.monotonic() - started:.1f}s")
    assert result.returncode == 0, result.stderr
    assert "all images up to date" in result.stdout, result.stdout
    assert {r[1] for r in rows(result.stdout).values()} == {"up"}, result.stdout  # "up to date" on every row
    assert "building" not in result.stderr and "pushing" not in result.stderr, result.stderr


def test_verify_catches_an_amd64_image_under_the_arm64_entry(first_build: tuple[str, str], fleet: Path,
                                                             client: RegistryClient) -> None:
    repository = "archfleet-test/v2ray"
    digests = resolve_platform_digests(client, f"{repository}:4.34")
    amd64 = client.manifest(repository, digests["linux/amd64"])
    body = manifest_list([(Platform("linux", "amd64"), amd64.digest, amd64.size, DOCKER_MANIFEST),
                          (Platform("linux", "arm64"), amd64.digest, amd64.size, DOCKER_MANIFEST)])
    client.put_manifest(repository, "tampered", body, DOCKER_MANIFEST_LIST)

    result = archfleet("images", "verify", "-f", str(fleet), f"{repository}:tampered")
    assert result.returncode == 1, result.stdout + result.stderr
    arm64_row = next(line for line in result.stdout.splitlines() if line.startswith("linux/arm64"))
    assert "mismatch: config says linux/amd64" in arm64_row and amd64.digest in arm64_row
    assert "linux/arm64 mismatch" in result.stderr

    report = verify_tag(RegistrySpec(lab=True), f"{repository}:4.34", ["linux/amd64", "linux/arm64", "linux/arm/v7"])
    assert not report.ok and [c.verdict for c in report.checks] == ["ok", "ok", "missing"]


def test_without_an_arm64_builder_arm64_builds_emulated_on_the_local_engine(
    first_build: tuple[str, str], lab: LabState, client: RegistryClient, tmp_path: Path,
) -> None:
    inventory = tmp_path / "amd64_only.py"
    inventory.write_text("from archfleet.lab.inventory import lab_groups\n\namd64 = lab_groups()['amd64']\n")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"""registry: {{lab: true}}
inventory: {inventory}
images:
  v2ray:
    context: {PROJECT / "images" / "v2ray"}
    platforms: [linux/arm64]
    build_args: {{BASE_IMAGE: "{{registry}}/archfleet-test/debian:bookworm", ARCHFLEET_TEST_RUN: "{uuid.uuid4().hex}"}}
    repository: archfleet-test/v2ray-emulated
""")
    tag = f"{client.address}/archfleet-test/v2ray-emulated:latest-arm64"
    try:
        result = archfleet("images", "build", "-f", str(fleet), timeout=1800)
        assert result.returncode == 0, result.stderr[-3000:]
        assert rows(result.stdout)[("v2ray", "linux/arm64")][:2] == ["emulated", "built"], result.stdout
        assert "v2ray linux/arm64: building emulated (QEMU) on the local engine (no builder host is linux/arm64" \
               in result.stderr
        digest = resolve_platform_digests(client, "archfleet-test/v2ray-emulated:latest")["linux/arm64"]
        head = file_head(client, "archfleet-test/v2ray-emulated", digest, MAIN_BINARY["v2ray"])
        assert int.from_bytes(head[18:20], "little") == E_MACHINE["linux/arm64"]
    finally:
        subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)
