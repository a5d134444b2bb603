"""End to end on the lab: build v2ray and the CI runner for amd64 and arm64 (arm64 natively on the arm64 host),
verify the published tags, prove each variant's main binary is an ELF for its machine (read from the published
layers), run each host's own variant, build again and see nothing rebuilt, and catch a tampered tag (table and
``--json``). Then, with a small amd64-only image: a failing build is one line naming its private log; a cold
builder rebuilds only the steps after a changed file, taking the rest from the registry's previous image; a build
past its time bound fails and the engine stops it.

The images go to their own repositories (``archfleet-test/...``), so the fleet's own tags are left alone. v2ray is
built from scratch on every run, natively for each platform (arm64 on the arm64 host) and once more emulated on the
local engine: its Dockerfile here declares a per-run build arg before its first step, so no layer cache (a builder's
or the registry's) can satisfy a step. buildbot-worker is built as any fleet image is, keyed by the hash of its
inputs: the registry the lab keeps across `lab down` may already hold it (then it is up to date, not rebuilt).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from archfleet.errors import OperationFailed
from archfleet.fleet.images import ImageSpec
from archfleet.fleet.registry import RegistrySpec
from archfleet.images.build import ImageTimeouts, PlatformResult, build_and_push
from archfleet.images.engine import engines
from archfleet.images.plan import NATIVE_LOCAL, BuildPath
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
from tests.lab.support import PROJECT, HostBootstrap, archfleet, on_host

pytestmark = pytest.mark.lab

PLATFORMS = ("linux/amd64", "linux/arm64")
E_MACHINE = {"linux/amd64": 62, "linux/arm64": 183}  # ELF e_machine: EM_X86_64, EM_AARCH64
MAIN_BINARY = {"v2ray": "usr/bin/v2ray", "buildbot-worker": "usr/bin/python3.11"}


def from_scratch_context(directory: Path, image: str) -> Path:
    """A copy of the project's ``image`` context whose Dockerfile declares ``ARCHFLEET_TEST_RUN`` right after its
    ``FROM``: every step after it misses every layer cache unless the build arg's value is the same (Docker's rule
    for a declared ARG), so a build with a new run id is a build from scratch."""
    context = directory / image
    shutil.copytree(PROJECT / "images" / image, context)
    dockerfile = context / "Dockerfile"
    lines = dockerfile.read_text().splitlines(keepends=True)
    first_from = next(index for index, line in enumerate(lines) if line.startswith("FROM "))
    lines.insert(first_from + 1, "ARG ARCHFLEET_TEST_RUN\n")
    dockerfile.write_text("".join(lines))
    return context


def fleet_text(run_id: str, v2ray_context: Path) -> str:
    return f"""registry: {{lab: true}}
inventory: {PROJECT / "inventories" / "lab.py"}
images:
  debian:
    local_image: archfleet-lab/debian:bookworm-{{arch}}
    repository: archfleet-test/debian
    tag: bookworm
  v2ray:
    context: {v2ray_context}
    build_args: {{BASE_IMAGE: "{{registry}}/archfleet-test/debian:bookworm", ARCHFLEET_TEST_RUN: "{run_id}"}}
    repository: archfleet-test/v2ray
    tag: "4.34"
  buildbot-worker:
    context: {PROJECT / "images" / "buildbot-worker"}
    build_args: {{BASE_IMAGE: "{{registry}}/archfleet-test/debian:bookworm"}}
    repository: archfleet-test/buildbot-worker
    tag: "3.7"
"""


@pytest.fixture(scope="module")
def fleet(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("images")
    path = directory / "fleet.yaml"
    path.write_text(fleet_text(uuid.uuid4().hex[:12], from_scratch_context(directory, "v2ray")))
    return path


@pytest.fixture(scope="module")
def client(lab: LabState) -> RegistryClient:
    return RegistryClient.for_spec(RegistrySpec(lab=True).resolve())


@pytest.fixture(scope="module")
def first_build(lab: LabState, fleet: Path, hosts_logged_in: None) -> Iterator[tuple[str, str]]:
    """The module's first build, on bootstrapped hosts (their engines trust the registry's CA): not on whatever an
    earlier module left."""
    started = time.monotonic()
    result = archfleet("images", "build", "-f", str(fleet), timeout=3600)
    print(f"\nfirst build: {time.monotonic() - started:.0f}s\n{result.stdout}")
    assert result.returncode == 0, result.stderr[-3000:]
    yield result.stdout, result.stderr
    for host in lab.hosts_of("amd64") + lab.hosts_of("arm64"):  # the builders' test tags (layers stay as cache)
        on_host(host, "docker images --format '{{.Repository}}:{{.Tag}}' | grep '/archfleet-test/' "
                      "| xargs -r docker rmi >/dev/null 2>&1; true")


def assert_from_scratch(lines: list[str]) -> None:
    """Every RUN step of the build ran: none came from a layer cache."""
    runs = [line for line in lines if line.startswith("step ") and line.split()[2] == "RUN"]
    assert runs and not any(line.endswith("(cached)") for line in runs), lines


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
    # v2ray: from scratch, natively for each platform (arm64 on the arm64 host)
    assert table[("v2ray", "linux/arm64")][:2] == ["arm64-1", "built"], stdout
    assert table[("v2ray", "linux/amd64")][1] == "built" and table[("v2ray", "linux/amd64")][0] != "emulated", stdout
    v2ray_arm64 = progress_lines(stderr, "v2ray", "linux/arm64")
    assert v2ray_arm64[0].startswith("building natively on arm64-1 (builder host arm64-1 is linux/arm64)"), stderr
    assert_from_scratch(v2ray_arm64)
    # buildbot-worker: built natively, or up to date (kept from an earlier run with the same inputs)
    assert table[("buildbot-worker", "linux/arm64")][:2] in (["arm64-1", "built"], ["arm64-1", "up"]), stdout
    assert table[("buildbot-worker", "linux/amd64")][1] in ("built", "up"), stdout
    assert table[("buildbot-worker", "linux/amd64")][0] != "emulated", stdout
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
def hosts_logged_in(lab: LabState, host_bootstrap: HostBootstrap) -> None:
    """The hosts' engines trust the registry and are logged in (the session's host bootstrap)."""
    host_bootstrap.ensure()


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

    as_json = archfleet("images", "verify", "-f", str(fleet), f"{repository}:tampered", "--json")
    assert as_json.returncode == 1, as_json.stderr  # the same exit code; the document on stdout, progress not
    document = json.loads(as_json.stdout)
    assert document["reference"].endswith(f"/{repository}:tampered") and document["ok"] is False
    assert document["digest"].startswith("sha256:")
    assert [(p["platform"], p["verdict"], p["config_platform"], p["digest"]) for p in document["platforms"]] == [
        ("linux/amd64", "ok", "linux/amd64", amd64.digest), ("linux/arm64", "mismatch", "linux/amd64", amd64.digest)]
    assert "archfleet: verifying " in as_json.stderr

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
    context: {from_scratch_context(tmp_path, "v2ray")}
    platforms: [linux/arm64]
    build_args: {{BASE_IMAGE: "{{registry}}/archfleet-test/debian:bookworm", ARCHFLEET_TEST_RUN: "{uuid.uuid4().hex}"}}
    repository: archfleet-test/v2ray-emulated
""")
    tag = f"{client.address}/archfleet-test/v2ray-emulated:latest-arm64"
    try:
        result = archfleet("images", "build", "-f", str(fleet), timeout=1800)
        assert result.returncode == 0, result.stderr[-3000:]
        assert rows(result.stdout)[("v2ray", "linux/arm64")][:2] == ["emulated", "built"], result.stdout
        assert "v2ray linux/arm64 [emulated]: building emulated (QEMU) on the local engine (no builder host is " \
               "linux/arm64" in result.stderr
        assert_from_scratch(progress_lines(result.stderr, "v2ray", "linux/arm64"))
        digest = resolve_platform_digests(client, "archfleet-test/v2ray-emulated:latest")["linux/arm64"]
        head = file_head(client, "archfleet-test/v2ray-emulated", digest, MAIN_BINARY["v2ray"])
        assert int.from_bytes(head[18:20], "little") == E_MACHINE["linux/arm64"]
    finally:
        subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)


# --- progress, build logs, time bounds and the registry cache (a small image, amd64 only: fast) ----------------

CACHE_TEST_DOCKERFILE = """ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
RUN sleep 2 && echo {run_id} > /expensive
COPY changed.txt /changed.txt
RUN cat /changed.txt
"""


def small_image_fleet(directory: Path, name: str, dockerfile: str) -> Path:
    """A fleet file with the Debian base and one small amd64 image built from ``dockerfile``."""
    context = directory / name
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    (context / "changed.txt").write_text("one\n")
    fleet = directory / f"{name}.yaml"
    fleet.write_text(f"""registry: {{lab: true}}
inventory: {PROJECT / "inventories" / "lab.py"}
images:
  debian: {{local_image: 'archfleet-lab/debian:bookworm-{{arch}}', repository: archfleet-test/debian, tag: bookworm}}
  {name}:
    context: {context}
    platforms: [linux/amd64]
    build_args: {{BASE_IMAGE: '{{registry}}/archfleet-test/debian:bookworm'}}
    repository: archfleet-test/{name}
""")
    return fleet


def progress_lines(stderr: str, image: str, platform: str = "linux/amd64") -> list[str]:
    """The progress lines of ``image`` for ``platform``, without the ``archfleet: IMAGE PLATFORM [WHERE]: ``
    prefix."""
    return [line.split("]: ", 1)[1] for line in stderr.splitlines()
            if line.startswith(f"archfleet: {image} {platform} [")]


@pytest.mark.usefixtures("hosts_logged_in")
def test_a_failing_build_exits_1_with_one_line_naming_its_log(lab: LabState, tmp_path: Path) -> None:
    run_id = uuid.uuid4().hex[:12]
    fleet = small_image_fleet(tmp_path, "failtest", f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\n"
                                                    f"RUN echo boom-{run_id} && exit 3\n")
    result = archfleet("images", "build", "-f", str(fleet), "debian", "failtest", timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("archfleet: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert errors[0] == result.stderr.strip().splitlines()[-1]
    # the lab's engines build through BuildKit (archfleet.images.buildkit): its words for a failed RUN step
    assert errors[0].startswith("archfleet: error: failtest linux/amd64: build failed natively on amd64-1: "
                                f"executor failed running [/bin/sh -c echo boom-{run_id} && exit 3]: exit code: 3 "
                                "(log: "), errors[0]
    log = Path(errors[0].rsplit("(log: ", 1)[1].rstrip(")"))
    assert log.parent.name == "builds" and (log.stat().st_mode & 0o777) == 0o600
    text = log.read_text()
    assert f"boom-{run_id}" in text and re.search(r"docker build \S.* --platform linux/amd64 ", text), text
    last = progress_lines(result.stderr, "failtest")[-1]
    assert re.match(rf"step \d+/\d+ RUN echo boom-{run_id} && exit 3 failed after ", last), last


@pytest.mark.usefixtures("hosts_logged_in")
def test_a_cold_builder_rebuilds_only_what_changed_from_the_registry_cache(lab: LabState, tmp_path: Path) -> None:
    """Build, wipe the image from the builder (a replaced spot instance has no layers), change the COPYed file,
    build again: the expensive step before the COPY comes from the registry's copy of the previous image."""
    run_id = uuid.uuid4().hex[:12]  # in the expensive step: no earlier run's layers can satisfy it
    fleet = small_image_fleet(tmp_path, "cachetest", CACHE_TEST_DOCKERFILE.format(run_id=run_id))
    builder = lab.hosts_of("amd64")[0]
    wipe = ("docker images --format '{{.ID}} {{.Repository}}' | awk '$2 ~ /\\/archfleet-test\\/cachetest$/ "
            "{print $1}' | sort -u | xargs -r docker rmi -f >/dev/null")

    first = archfleet("images", "build", "-f", str(fleet), timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    lines = progress_lines(first.stderr, "cachetest")
    expensive = f"RUN sleep 2 && echo {run_id} > /expensive ("
    assert [line for line in lines if expensive in line and not line.endswith("(cached)")], lines  # new: it ran

    assert on_host(builder, wipe).returncode == 0
    (tmp_path / "cachetest" / "changed.txt").write_text("two\n")
    second = archfleet("images", "build", "-f", str(fleet), timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    lines = progress_lines(second.stderr, "cachetest")
    # BuildKit reads the previous image's inline cache from the registry itself (nothing is pulled first)
    assert any(re.match(r"registry cache: \S+/cachetest:latest-amd64 \(inline cache, read by BuildKit\)", line)
               for line in lines), lines
    steps = [line for line in lines if line.startswith("step ")]
    after_from = steps[next(i for i, line in enumerate(steps) if expensive in line):]
    assert after_from[0].endswith(f"{expensive.rstrip(' (')} (cached)"), steps  # the builder had none of it
    assert [line.endswith("(cached)") for line in after_from[1:]] == [False, False], steps  # COPY and after: run
    cached = re.search(r"\((\d+) of (\d+) steps from the cache\)", lines[-2])
    assert cached is not None and "built in " in lines[-2], lines
    assert rows(second.stdout)[("cachetest", "linux/amd64")][5] == f"{cached[1]}/{cached[2]}", second.stdout
    on_host(builder, wipe)


def test_a_build_past_its_time_bound_fails_and_the_engine_stops_it(lab: LabState, tmp_path: Path,
                                                                 client: RegistryClient) -> None:
    run_id = uuid.uuid4().hex[:12]
    (tmp_path / "Dockerfile").write_text(f"FROM archfleet-lab/debian:bookworm-amd64\nRUN sleep 300 # {run_id}\n")
    amd64 = Platform("linux", "amd64")
    spec = ImageSpec("slowtest", tmp_path, tmp_path / "Dockerfile", (amd64,), {}, "archfleet-test/slowtest")
    result = PlatformResult("slowtest", amd64, BuildPath(amd64, NATIVE_LOCAL, None, "the test"), "h1")
    started = time.monotonic()
    with engines() as pool, pytest.raises(OperationFailed) as failure:
        build_and_push(spec, result, {}, client, pool, ImageTimeouts(build=8))
    assert time.monotonic() - started < 60  # 8 s, and the cut-off; not the 300 s of the step
    assert str(failure.value) == f"slowtest linux/amd64: build timed out after 8 s (log: {result.log})"

    def running() -> str:
        return subprocess.run(["docker", "ps", "-a", "--no-trunc", "--format", "{{.Command}}"],
                              capture_output=True, text=True, check=True).stdout

    deadline = time.monotonic() + 30
    while run_id in running() and time.monotonic() < deadline:  # the engine removes the cancelled step
        time.sleep(1)
    assert run_id not in running()


def test_verify_json_is_one_document_on_stdout_with_the_same_exit_code(lab: LabState, tmp_path: Path) -> None:
    fleet = small_image_fleet(tmp_path, "jsontest", "FROM scratch\n")
    archfleet("images", "build", "-f", str(fleet), "debian", check=True)  # the base the other tests use
    result = archfleet("images", "verify", "-f", str(fleet), "archfleet-test/debian:bookworm", "--json",
                       "--platforms", "linux/amd64,linux/arm64,linux/arm/v7")
    assert result.returncode == 1, result.stdout + result.stderr
    document = json.loads(result.stdout)  # stdout is the document and nothing else
    assert document["ok"] is False and document["digest"].startswith("sha256:")
    assert document["reference"].endswith("/archfleet-test/debian:bookworm")
    by_platform = {p["platform"]: p for p in document["platforms"]}
    assert [p["verdict"] for p in document["platforms"]] == ["ok", "ok", "missing"]
    assert by_platform["linux/arm64"]["config_platform"] == "linux/arm64" and by_platform["linux/arm64"]["size"] > 0
    assert by_platform["linux/arm/v7"] == {"platform": "linux/arm/v7", "verdict": "missing", "digest": None,
                                           "size": None, "config_platform": None}
    assert result.stderr.strip().splitlines()[-1].endswith("linux/arm/v7 missing"), result.stderr
