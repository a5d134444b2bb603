"""End to end on the lab: reach every host, platform facts, host bootstrap converges twice, and a multi-arch
tag is pulled by each host's own engine with no --platform flag."""

from __future__ import annotations

import subprocess

import pytest

from archfleet.lab.images import base_image
from archfleet.lab.state import LabHost, LabState
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
