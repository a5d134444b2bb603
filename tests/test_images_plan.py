"""The build plan without a lab: where each platform builds (native on a builder host, local, emulated), builder
probing, platform-name mapping, input hashes, and the `docker build` command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from archfleet.fleet.images import ImageSpec
from archfleet.images.build import build_request
from archfleet.images.plan import (
    EMULATED,
    NATIVE_LOCAL,
    NATIVE_REMOTE,
    Builder,
    Candidate,
    choose_path,
    context_digest,
    input_hash,
    inventory_hosts,
    parse_probe,
    platform_build_args,
)
from archfleet.platforms import Platform
from archfleet.platforms import parse as parse_platform

AMD64, ARM64, ARMV7 = Platform("linux", "amd64"), Platform("linux", "arm64"), Platform("linux", "arm", "v7")
BUILDERS = [Builder("amd64-1", AMD64, "10.0.0.10"), Builder("arm64-1", ARM64, "10.0.0.130"),
            Builder("amd64-2", AMD64, "10.0.0.11")]


@pytest.mark.parametrize(("text", "expected"), [
    ("linux/amd64", AMD64), ("linux/x86_64", AMD64), ("linux/arm64", ARM64), ("linux/arm64/v8", ARM64),
    ("linux/aarch64", ARM64), ("linux/arm/v7", ARMV7), ("linux/armhf", ARMV7),
])
def test_platform_names(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


def test_native_on_the_first_builder_of_that_architecture() -> None:
    arm = choose_path(ARM64, BUILDERS, AMD64)
    assert (arm.path, arm.builder and arm.builder.name) == (NATIVE_REMOTE, "arm64-1")
    assert arm.where == "natively on arm64-1" and "arm64-1 is linux/arm64" in arm.reason
    amd = choose_path(AMD64, BUILDERS, AMD64)
    assert (amd.path, amd.builder and amd.builder.name) == (NATIVE_REMOTE, "amd64-1")


def test_no_builder_of_that_architecture_falls_back_to_emulation() -> None:
    path = choose_path(ARMV7, BUILDERS, AMD64)
    assert path.path == EMULATED and path.builder is None
    assert path.reason == "no builder host is linux/arm/v7 (builder hosts: amd64-1=linux/amd64, " \
                          "arm64-1=linux/arm64, amd64-2=linux/amd64)"
    assert choose_path(ARM64, [], AMD64).reason == "no builder host is linux/arm64 (builder hosts: none)"


def test_local_engine_of_that_architecture_builds_natively() -> None:
    path = choose_path(AMD64, [BUILDERS[1]], AMD64)
    assert path.path == NATIVE_LOCAL and path.where == "natively on the local engine"


@pytest.mark.parametrize(("output", "expected"), [
    ("Linux aarch64\nlinux/arm64\n", ARM64),
    ("Linux x86_64\nlinux/amd64\n", AMD64),
    ("Linux armv7l\nlinux/arm\n", ARMV7),  # Docker says "arm": the kernel names the variant
    ("Linux x86_64\nno-engine\n", None),
    ("Linux x86_64\n", None),
    ("Linux x86_64\nlinux/sparc\n", None),
])
def test_parse_probe(output: str, expected: Platform | None) -> None:
    assert parse_probe(output) == expected


def test_inventory_hosts_and_ssh_argv(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        "_hidden = [('x', {})]\n"
        "arm64 = [('arm64-1', {'ssh_hostname': '10.0.0.130', 'ssh_user': 'root', 'ssh_key': '/k',\n"
        "                      'ssh_known_hosts_file': '/kh', 'ssh_port': 2222})]\n"
        "web = ['web-1', ('arm64-1', {})]\n"
    )
    hosts = inventory_hosts(inventory)
    assert [h.name for h in hosts] == ["arm64-1", "web-1"]
    argv = hosts[0].builder(ARM64).ssh_argv("-N")
    assert argv[-3:] == ["-N", "root@10.0.0.130", "--"]
    assert argv[argv.index("-i"):argv.index("-i") + 2] == ["-i", "/k"]
    assert "UserKnownHostsFile=/kh" in argv and "StrictHostKeyChecking=yes" in argv and "2222" in argv
    assert Candidate("web-1").builder(AMD64).hostname == "web-1"


def test_input_hash_changes_with_each_input(tmp_path: Path) -> None:
    (tmp_path / "entrypoint.sh").write_text("#!/bin/sh\n")
    base = input_hash(context_digest(tmp_path), b"FROM x", {"BASE_IMAGE": "r/d@sha256:1"}, ARM64)
    assert base == input_hash(context_digest(tmp_path), b"FROM x", {"BASE_IMAGE": "r/d@sha256:1"}, ARM64)
    assert base != input_hash(context_digest(tmp_path), b"FROM y", {"BASE_IMAGE": "r/d@sha256:1"}, ARM64)
    assert base != input_hash(context_digest(tmp_path), b"FROM x", {"BASE_IMAGE": "r/d@sha256:2"}, ARM64)
    assert base != input_hash(context_digest(tmp_path), b"FROM x", {"BASE_IMAGE": "r/d@sha256:1"}, AMD64)
    (tmp_path / "entrypoint.sh").chmod(0o755)
    assert base != input_hash(context_digest(tmp_path), b"FROM x", {"BASE_IMAGE": "r/d@sha256:1"}, ARM64)


def test_build_request_passes_target_args_only_when_declared(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG TARGETARCH\nARG TARGETVARIANT\n")
    spec = ImageSpec("runner", tmp_path, dockerfile, (ARMV7,), {}, "archfleet/runner", "1")
    request = build_request(spec, ARMV7, "r/archfleet/runner:1-arm-v7", {"BASE_IMAGE": "r/d@sha256:1"}, "h1",
                            host_network=True, cache_from=["r/archfleet/runner:1-arm-v7"])
    arguments = request.api_arguments()
    assert arguments == {
        "path": str(tmp_path), "dockerfile": str(dockerfile), "tag": "r/archfleet/runner:1-arm-v7",
        "platform": "linux/arm/v7",
        "buildargs": {"BASE_IMAGE": "r/d@sha256:1", "TARGETARCH": "arm", "TARGETVARIANT": "v7"},
        "labels": {"archfleet.images.input": "h1", "archfleet.images.name": "runner"},
        "cache_from": ["r/archfleet/runner:1-arm-v7"], "network_mode": "host",
        "rm": True, "forcerm": True, "pull": False, "decode": True,
    }
    argv = request.command_line()  # the same build as a person would type it (heads the build log)
    assert argv[:6] == ["docker", "build", "--platform", "linux/arm/v7", "-t", "r/archfleet/runner:1-arm-v7"]
    joined = " ".join(argv)
    assert "--label archfleet.images.input=h1" in joined and "--network host" in joined
    assert "--cache-from r/archfleet/runner:1-arm-v7" in joined
    assert "--build-arg TARGETARCH=arm --build-arg TARGETVARIANT=v7" in joined
    assert "TARGETPLATFORM" not in joined and argv[-1] == str(tmp_path)
    assert platform_build_args("FROM x\n", ARM64) == {}
    assert spec.platform_tag(ARMV7) == "1-arm-v7"


def test_build_request_without_cache_or_host_network(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM x\n")
    spec = ImageSpec("v2ray", tmp_path, dockerfile, (AMD64,), {}, "archfleet/v2ray", "1")
    request = build_request(spec, AMD64, "r/archfleet/v2ray:1-amd64", {}, "h2", host_network=False)
    assert "network_mode" not in request.api_arguments() and request.api_arguments()["cache_from"] == []
    assert "--network" not in request.command_line() and "--cache-from" not in request.command_line()
