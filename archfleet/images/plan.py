"""Deciding, without touching anything: where each platform builds, and what the inputs of a build are.

Pure functions (tested without a lab):

- :func:`choose_path` -- a builder host of the platform's architecture (native, its engine over SSH), else the local
  engine when it is that platform (native), else the local engine under QEMU (emulated); with the reason.
- :func:`parse_probe` -- one SSH command's output (``uname -sm`` and the engine's os/arch) -> the builder's platform.
- :func:`input_hash` -- the hash recorded as the image label ``archfleet.images.input``: context files, Dockerfile,
  build args (with the base image pinned to its digest), platform.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archfleet import ssh
from archfleet.platforms import Platform, UnknownPlatform, from_uname

INPUT_LABEL = "archfleet.images.input"
NAME_LABEL = "archfleet.images.name"
BASE_ARG = "BASE_IMAGE"
# One command per candidate builder: its kernel/machine and whether (and as what) its Docker engine answers.
PROBE_COMMAND = "uname -sm; docker version --format '{{.Server.Os}}/{{.Server.Arch}}' 2>/dev/null || echo no-engine"

NATIVE_REMOTE = "native"  # on a builder host of that architecture, through its engine over SSH
NATIVE_LOCAL = "local"  # on the local engine, which is that architecture
EMULATED = "emulated"  # on the local engine under QEMU user emulation (binfmt)
PUBLISH_LOCAL = "local image"  # no build: an existing local image is pushed


@dataclass(frozen=True)
class Builder:
    """A host whose Docker engine can build for ``platform``, reached over SSH with the inventory's data."""

    name: str
    platform: Platform
    hostname: str
    user: str = "root"
    port: int = 22
    key: str | None = None
    known_hosts: str | None = None

    def ssh_argv(self, *extra: str) -> list[str]:
        """ssh with the inventory's key and known_hosts, host key checking on, no agent, no prompts."""
        return ssh.ssh_argv(self.user, self.hostname, key=self.key, known_hosts=self.known_hosts, port=self.port,
                            options=extra)


@dataclass(frozen=True)
class Candidate:
    """A host from the inventory, before probing."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)

    def builder(self, platform: Platform) -> Builder:
        d = self.data
        return Builder(
            name=self.name, platform=platform, hostname=str(d.get("ssh_hostname") or self.name),
            user=str(d.get("ssh_user") or "root"), port=int(d.get("ssh_port") or 22),
            key=str(d["ssh_key"]) if d.get("ssh_key") else None,
            known_hosts=str(d["ssh_known_hosts_file"]) if d.get("ssh_known_hosts_file") else None,
        )


@dataclass(frozen=True)
class BuildPath:
    platform: Platform
    path: str  # NATIVE_REMOTE, NATIVE_LOCAL, EMULATED or PUBLISH_LOCAL
    builder: Builder | None  # the builder host for NATIVE_REMOTE
    reason: str

    @property
    def label(self) -> str:
        """One word: the builder host's name, ``local``, ``emulated`` or ``local-image`` (progress prefixes and the
        build table's PATH column)."""
        if self.path == NATIVE_REMOTE and self.builder:
            return self.builder.name
        return {NATIVE_LOCAL: "local", EMULATED: "emulated", PUBLISH_LOCAL: "local-image"}[self.path]

    @property
    def where(self) -> str:
        if self.path == NATIVE_REMOTE and self.builder:
            return f"natively on {self.builder.name}"
        return {NATIVE_LOCAL: "natively on the local engine", EMULATED: "emulated (QEMU) on the local engine",
                PUBLISH_LOCAL: "no build (local image)"}[self.path]


def inventory_hosts(path: Path) -> list[Candidate]:
    """The hosts of a pyinfra inventory file, in file order, each with its data as pyinfra merges it (read by
    archfleet.inventory_file, the one reader)."""
    from archfleet.inventory_file import load_inventory

    return candidates_of(load_inventory(path, "images: builder inventory"))


def candidates_of(hosts: Iterable[Any]) -> list[Candidate]:
    """Loaded inventory hosts as candidate builders: for the fleet's own inventory, the hosts as the fleet file's
    ``ssh:`` made them (key, user, known_hosts), the same data every other command connects with."""
    return [Candidate(host.name, host.data.dict()) for host in hosts]


def parse_probe(output: str) -> Platform | None:
    """The output of PROBE_COMMAND -> the platform the host's ENGINE builds for (None: no usable engine).

    ``Linux aarch64`` + ``linux/arm64`` -> linux/arm64. The engine's word wins over uname's (a 32-bit engine on a
    64-bit kernel builds 32-bit images); a host without an answering engine is no builder.
    """
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if len(lines) < 2 or lines[1] == "no-engine" or "/" not in lines[1]:
        return None
    engine_os, _, engine_arch = lines[1].partition("/")
    try:
        engine = from_uname(engine_os, engine_arch)
    except UnknownPlatform:
        return None
    words = lines[0].split()
    if engine.architecture == "arm" and len(words) == 2:  # the engine says "arm": the kernel knows the variant
        try:
            kernel = from_uname(words[0], words[1])
        except UnknownPlatform:
            return engine
        if kernel.architecture == "arm":
            return kernel
    return engine


def choose_path(platform: Platform, builders: Iterable[Builder], local: Platform | None) -> BuildPath:
    """Where ``platform`` builds: the first builder host of that platform, else the local engine (native if it is
    that platform, else emulated)."""
    builders = list(builders)
    for builder in builders:
        if builder.platform == platform:
            return BuildPath(platform, NATIVE_REMOTE, builder, f"builder host {builder.name} is {builder.platform}")
    offered = ", ".join(f"{b.name}={b.platform}" for b in builders) or "none"
    if local == platform:
        return BuildPath(platform, NATIVE_LOCAL, None, f"the local engine is {platform} (builder hosts: {offered})")
    return BuildPath(platform, EMULATED, None, f"no builder host is {platform} (builder hosts: {offered})")


def context_digest(context: Path) -> str:
    """sha256 over every file of a build context: relative path, executable bit, content. Order-independent."""
    sha = hashlib.sha256()
    for root, dirs, files in os.walk(context):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            relative = path.relative_to(context).as_posix()
            executable = os.access(path, os.X_OK)
            sha.update(f"{relative}\0{int(executable)}\0".encode())
            sha.update(hashlib.sha256(path.read_bytes()).digest())
    return sha.hexdigest()


def input_hash(context_sha: str, dockerfile: bytes, build_args: dict[str, str], platform: Platform) -> str:
    """The build's inputs in one hash. ``build_args`` carry the base image pinned by digest (``REPO@sha256:...``),
    so a new base image changes the hash."""
    sha = hashlib.sha256()
    sha.update(f"context\0{context_sha}\0".encode())
    sha.update(b"dockerfile\0" + hashlib.sha256(dockerfile).digest())
    for key in sorted(build_args):
        sha.update(f"arg\0{key}\0{build_args[key]}\0".encode())
    sha.update(f"platform\0{platform}\0".encode())
    return sha.hexdigest()[:32]


def platform_build_args(dockerfile: str, platform: Platform) -> dict[str, str]:
    """TARGETARCH / TARGETVARIANT / TARGETPLATFORM for Dockerfiles that declare them (BuildKit sets these itself;
    the classic builder of Debian's 20.10 engine does not)."""
    values = {"TARGETPLATFORM": str(platform), "TARGETOS": platform.os, "TARGETARCH": platform.architecture,
              "TARGETVARIANT": platform.variant or ""}
    return {k: v for k, v in values.items() if f"ARG {k}" in dockerfile}
