"""End to end on the lab: reach every host, platform facts, host bootstrap converges twice, and a multi-arch
tag is pulled by each host's own engine with no --platform flag."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from archfleet.images.plan import INPUT_LABEL
from archfleet.lab import image_cache
from archfleet.lab.images import base_image
from archfleet.lab.state import LabHost, LabPaths, LabState, state_dir
from tests.lab.support import archfleet, on_host, pyinfra

pytestmark = pytest.mark.lab

MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}


def inventory_hosts(lab: LabState) -> list[LabHost]:
    """The hosts of inventories/lab.py: every kind but ``cloud`` (those are reached as admin by their own tests)."""
    return [host for host in lab.hosts if host.kind != "cloud"]


def test_pyinfra_reaches_every_host_and_platforms_are_right(lab: LabState) -> None:
    result = pyinfra("fact", "archfleet.facts.platform.HostPlatform", "server.Arch")
    assert result.returncode == 0, result.output
    facts = result.facts()
    assert facts == {h.name: f"linux/{h.arch}" for h in inventory_hosts(lab)}
    assert {"amd64", "arm64"} <= {h.kind for h in lab.hosts}


def test_host_deploy_converges_a_bare_amd64_host_then_changes_nothing(lab: LabState) -> None:
    bare = lab.hosts_of("amd64")[0]
    archfleet("lab", "reset", bare.name, check=True)
    assert on_host(bare, "command -v docker").returncode != 0, "the reset host should have no Docker"

    first = pyinfra("deploys/host.py")
    assert first.returncode == 0, first.output
    assert first.grand_total()["changed"] >= 2, first.output

    second = pyinfra("deploys/host.py")
    assert second.returncode == 0, second.output
    total = second.grand_total()
    assert total["changed"] == 0 and total["errors"] == 0, second.output
    assert total["unchanged"] == total["operations"]

    engine = on_host(bare, "docker version --format '{{.Server.Arch}}' && ls /etc/rc2.d/ | grep docker")
    assert engine.returncode == 0 and engine.stdout.split()[0] == "amd64", engine.stderr

    # The engine's package came to the host through the lab's package cache (its log: TIME|O|SIZE|CLIENT|URL for
    # each file served; the host itself ran a plain apt-get).
    log = LabPaths(state_dir()).apt_cache_dir / "log" / "apt-cacher.log"
    served = [line for line in log.read_text().splitlines()
              if line.split("|")[1:2] == ["O"] and f"|{bare.address}|" in line and "/docker.io_" in line]
    assert served, f"{bare.name}'s docker.io did not come through the package cache:\n{log.read_text()[-2000:]}"


def test_multiarch_tag_is_pulled_natively_by_each_host(lab: LabState) -> None:
    assert pyinfra("deploys/host.py").returncode == 0
    registry = lab.registry.address
    tag = f"{registry}/lab-test/debian:bookworm"
    for arch in ("amd64", "arm64"):
        subprocess.run(["docker", "tag", base_image(arch), f"{tag}-{arch}"], check=True)
        subprocess.run(["docker", "push", "-q", f"{tag}-{arch}"], check=True, capture_output=True)
    subprocess.run(["docker", "manifest", "rm", tag], capture_output=True, check=False)
    subprocess.run(["docker", "manifest", "create", tag, f"{tag}-amd64", f"{tag}-arm64"], check=True,
                   capture_output=True)
    subprocess.run(["docker", "manifest", "push", "--purge", tag], check=True, capture_output=True)

    for host in inventory_hosts(lab):
        result = on_host(
            host,
            f"docker pull -q {tag} >/dev/null && docker image inspect --format '{{{{.Architecture}}}}' {tag} "
            f"&& docker run --rm --network host {tag} uname -m",
        )
        assert result.returncode == 0, f"{host.name}: {result.stderr}"
        image_arch, machine = result.stdout.split()
        assert (image_arch, machine) == (host.arch, MACHINE[host.arch]), host.name


# --- what `lab down` keeps of the registry: built images, whole (archfleet/lab/image_cache.py) ------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def loopback_registry(storage: Path) -> Iterator[str]:
    """Debian's registry on a loopback port over plain HTTP (Docker pushes to 127.0.0.1 without TLS)."""
    address = f"127.0.0.1:{free_port()}"
    config = storage.parent / "config.yml"
    config.write_text(f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {storage}}}}}\n"
                      f"http: {{addr: {address}}}\n")
    process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["curl", "-sf", f"http://{address}/v2/"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline and process.poll() is None, "the loopback registry did not start"
            time.sleep(0.2)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=20)


def push_small_image(tmp_path: Path, tag: str, content: str, label: str | None) -> None:
    context = tmp_path / f"context-{uuid.uuid4().hex[:8]}"
    context.mkdir()
    (context / "file").write_text(content)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY file /file\n")
    labels = ["--label", f"{INPUT_LABEL}={label}"] if label else []
    subprocess.run(["docker", "build", "-q", "-t", tag, *labels, str(context)], check=True, capture_output=True)
    subprocess.run(["docker", "push", "-q", tag], check=True, capture_output=True)
    subprocess.run(["docker", "rmi", tag], check=False, capture_output=True)


def test_lab_down_keeps_built_images_whole_and_drops_the_rest(lab: LabState, tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    run_id = uuid.uuid4().hex  # new layers: the storage's blobs are this test's own
    with loopback_registry(storage) as address:
        push_small_image(tmp_path, f"{address}/built/app:1-amd64", f"built {run_id}", label="hash-1")
        subprocess.run(["docker", "manifest", "create", "--insecure", f"{address}/built/app:1",
                        f"{address}/built/app:1-amd64"], check=True, capture_output=True)
        subprocess.run(["docker", "manifest", "push", "--insecure", "--purge", f"{address}/built/app:1"], check=True,
                       capture_output=True)
        push_small_image(tmp_path, f"{address}/plain/app:1", f"plain {run_id}", label=None)
        push_small_image(tmp_path, f"{address}/damaged/app:1", f"damaged {run_id}", label="hash-2")
        damaged = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"http://{address}/v2/damaged/app/manifests/1",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})).read())
    layer = damaged["layers"][0]["digest"].split(":", 1)[1]
    shutil.rmtree(storage / "docker/registry/v2/repositories/damaged/app/_layers/sha256" / layer)  # a lost layer
    blobs_before = {p.parent.name for p in (storage / "docker/registry/v2/blobs").rglob("data")}

    pruned = image_cache.prune(storage, INPUT_LABEL)

    assert sorted(pruned.kept) == ["built/app:1", "built/app:1-amd64"], pruned
    assert sorted(pruned.dropped) == ["damaged/app:1", "plain/app:1"], pruned
    blobs_after = {p.parent.name for p in (storage / "docker/registry/v2/blobs").rglob("data")}
    assert blobs_after < blobs_before and layer not in blobs_after  # garbage collected
    with loopback_registry(storage) as address:
        def status(path: str) -> int:
            request = urllib.request.Request(f"http://{address}/v2/{path}", headers={"Accept": ", ".join((
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.docker.distribution.manifest.v2+json"))})
            try:
                return int(urllib.request.urlopen(request).status)
            except urllib.error.HTTPError as error:
                return error.code

        assert status("built/app/manifests/1") == 200 and status("built/app/manifests/1-amd64") == 200
        assert status("plain/app/manifests/1") == 404 and status("damaged/app/manifests/1") == 404
        pulled = subprocess.run(["docker", "pull", "-q", f"{address}/built/app:1"], capture_output=True, text=True)
        assert pulled.returncode == 0, pulled.stderr  # every blob of the kept image is there
        subprocess.run(["docker", "rmi", f"{address}/built/app:1"], check=False, capture_output=True)
