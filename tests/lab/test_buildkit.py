"""BuildKit on the lab: a Dockerfile the legacy builder refuses (``RUN --mount=type=cache``, ``RUN
--mount=type=secret`` is not used: the fleet file has no build secrets) built for linux/amd64 (this machine's
engine) and linux/arm64 (natively, on the arm64 host's engine over SSH), each through the engine's built-in
BuildKit driven by Debian's 20.10 docker CLI, with the same per-step progress lines; the tag is then verified
platform by platform, and each variant's ``/arch`` (written by ``uname -m`` at build time) is read back from the
published layers. A second build with one changed file after the cached steps runs only the step after it.
"""

from __future__ import annotations

import io
import re
import tarfile
import uuid
from pathlib import Path

import pytest

from archfleet.fleet.registry import RegistrySpec
from archfleet.lab.state import LabState
from archfleet.registry_client import RegistryClient, resolve_platform_digests
from tests.lab.support import PROJECT, HostBootstrap, archfleet

pytestmark = pytest.mark.lab

DOCKERFILE = """ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
RUN --mount=type=cache,target=/var/cache/archfleet-test echo {run_id} >> /var/cache/archfleet-test/runs \\
 && wc -l < /var/cache/archfleet-test/runs > /runs-seen
RUN uname -m > /arch
COPY changed.txt /changed.txt
RUN cat /changed.txt > /changed-copy
"""
BOOTSTRAP = HostBootstrap()


def buildkit_fleet(directory: Path) -> Path:
    run_id = uuid.uuid4().hex  # a per-run value in the first RUN: nothing can come from an earlier run's cache
    context = directory / "bkcache"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE.format(run_id=run_id))
    (context / "changed.txt").write_text("one\n")
    fleet = directory / "fleet.yaml"
    fleet.write_text(f"""registry: {{lab: true}}
inventory: {PROJECT / "inventories" / "lab.py"}
images:
  debian: {{local_image: 'archfleet-lab/debian:bookworm-{{arch}}', repository: archfleet-test/debian, tag: bookworm}}
  bkcache:
    context: {context}
    platforms: [linux/amd64, linux/arm64]
    build_args: {{BASE_IMAGE: '{{registry}}/archfleet-test/debian:bookworm'}}
    repository: archfleet-test/bkcache
    tag: '{run_id[:12]}'
""")
    return fleet


def steps(stderr: str, platform: str) -> list[str]:
    return [line.split("]: ", 1)[1] for line in stderr.splitlines()
            if line.startswith(f"archfleet: bkcache {platform} [") and "]: step " in line]


def file_in_image(client: RegistryClient, repository: str, digest: str, path: str) -> bytes:
    manifest = client.manifest(repository, digest)
    for layer in reversed(manifest.json["layers"]):
        with tarfile.open(fileobj=io.BytesIO(client.blob(repository, layer["digest"])), mode="r|gz") as tar:
            for member in tar:
                if member.name.lstrip("./") == path and member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None
                    return handle.read()
    raise AssertionError(f"{path} is not in {repository}@{digest}")


def test_cache_mounts_build_for_both_platforms_natively_and_verify(lab: LabState, tmp_path: Path) -> None:
    BOOTSTRAP.ensure()  # the arm64 host's engine trusts the lab registry and is logged in
    fleet = buildkit_fleet(tmp_path)
    archfleet("images", "build", "-f", str(fleet), "debian", check=True)
    built = archfleet("images", "build", "-f", str(fleet), "bkcache", timeout=3600)
    assert built.returncode == 0, built.stderr[-4000:]
    for platform in ("linux/amd64", "linux/arm64"):
        said = [line for line in built.stderr.splitlines() if line.startswith(f"archfleet: bkcache {platform} [")]
        assert any("BuildKit (docker 20.10" in line for line in said), said
        assert not any("legacy builder" in line for line in said), said
        lines = steps(built.stderr, platform)
        assert any(re.match(r"step 2/5 RUN --mount=type=cache,target=/var/cache/archfleet-test .* \(\d+\.\d s\)$",
                            line) for line in lines), lines
        assert any(line.startswith("step 5/5 RUN cat /changed.txt") for line in lines), lines
    assert re.search(r"bkcache\s+linux/arm64\s+arm64-\d+\s+built", built.stdout), built.stdout  # natively
    assert "verified" in built.stderr

    verify = archfleet("images", "verify", "-f", str(fleet), "bkcache")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    client = RegistryClient.for_spec(RegistrySpec(lab=True).resolve())
    tag = next(line.split("tag: ")[1].strip(" '") for line in fleet.read_text().splitlines() if "tag: '" in line)
    digests = resolve_platform_digests(client, f"archfleet-test/bkcache:{tag}")
    machines = {platform: file_in_image(client, "archfleet-test/bkcache", digest, "arch").decode().strip()
                for platform, digest in digests.items()}
    assert machines == {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}

    # One changed file after the cached steps: only the step after it runs again (amd64 and arm64 alike).
    (tmp_path / "bkcache" / "changed.txt").write_text("two\n")
    again = archfleet("images", "build", "-f", str(fleet), "bkcache", timeout=3600)
    assert again.returncode == 0, again.stderr[-4000:]
    for platform in ("linux/amd64", "linux/arm64"):
        lines = steps(again.stderr, platform)
        assert any(line.startswith("step 2/5 RUN --mount=type=cache") and line.endswith("(cached)")
                   for line in lines), lines
        assert any(line.startswith("step 5/5 RUN cat /changed.txt") and not line.endswith("(cached)")
                   for line in lines), lines
