"""The lab's images: a Debian 12 base per architecture (debootstrap, cached) and the host images.

Each image carries a label with the hash of its inputs; an image whose label matches is not rebuilt,
so a warm ``lab up`` runs no build at all.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from archfleet.lab.state import cache_dir
from archfleet.run import run, say

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_INCLUDE = "ca-certificates"
INPUT_LABEL = "archfleet.lab.input"

HOST_PACKAGES = {
    # The amd64 host is bare: the host deploy installs its Docker engine.
    "amd64": "openssh-server",
    # The arm64 host ships its engine: installing it under QEMU on every test run would be slow,
    # and its x86_64 wiring (arm64-engine.Dockerfile) must sit beside it.
    "arm64": "openssh-server docker.io iptables ca-certificates",
}
X86_64_ENGINE_BINARIES = ("/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/runc")


def base_image(arch: str) -> str:
    return f"archfleet-lab/debian:{SUITE}-{arch}"


def host_image(arch: str) -> str:
    return f"archfleet-lab/host:{arch}"


def resource_dir() -> Path:
    return Path(str(resources.files("archfleet.lab") / "resources"))


def image_label(image: str) -> str | None:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{INPUT_LABEL}"}}}}', image],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def image_id(image: str) -> str:
    return run(["docker", "image", "inspect", "--format", "{{.Id}}", image]).stdout.strip()


def digest_of(*parts: bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(hashlib.sha256(part).digest())
    return sha.hexdigest()[:16]


def rootfs_tarball(arch: str) -> Path:
    """A minbase Debian rootfs for ``arch`` as a tarball, built once with debootstrap and cached."""
    target = cache_dir() / "rootfs" / f"debian-{SUITE}-{arch}.tar"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    say(f"building a Debian {SUITE} {arch} rootfs with debootstrap (once; cached in {target.parent})")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        root = Path(tmp) / "root"
        run([
            "debootstrap", f"--arch={arch}", "--variant=minbase", f"--include={BASE_INCLUDE}",
            SUITE, str(root), MIRROR,
        ])
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."])
        partial.rename(target)
    return target


def build(image: str, arch: str, context: Path, dockerfile: Path, label: str, args: dict[str, str]) -> None:
    argv = [
        "docker", "build", "--platform", f"linux/{arch}", "-t", image, "-f", str(dockerfile),
        "--label", f"{INPUT_LABEL}={label}",
    ]
    for key, value in args.items():
        argv += ["--build-arg", f"{key}={value}"]
    run([*argv, str(context)])


def ensure_base_image(arch: str) -> str:
    image = base_image(arch)
    dockerfile = resource_dir() / "base.Dockerfile"
    tarball = rootfs_tarball(arch)
    stat = tarball.stat()
    label = digest_of(dockerfile.read_bytes(), f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    if image_label(image) == label:
        return image
    say(f"importing the {arch} rootfs as {image}")
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        (context / "rootfs.tar").hardlink_to(tarball)
        build(image, arch, context, dockerfile, label, {})
    return image


def x86_64_engine_files(context: Path) -> None:
    """containerd, shim and runc of this x86_64 machine, with the loader and libraries they link."""
    root = context / "x86_64"
    bin_dir = root / "opt/x86_64/bin"
    bin_dir.mkdir(parents=True)
    libs: set[str] = set()
    for binary in X86_64_ENGINE_BINARIES:
        shutil.copy2(binary, bin_dir / Path(binary).name)
        for line in run(["ldd", binary]).stdout.splitlines():
            words = line.split()
            if "=>" in words and len(words) >= 3 and words[2].startswith("/"):
                libs.add(words[2])
    lib_dir = root / "usr/lib/x86_64-linux-gnu"
    lib_dir.mkdir(parents=True)
    for lib in libs:
        shutil.copy(Path(lib).resolve(), lib_dir / Path(lib).name)
    (root / "lib64").mkdir()
    shutil.copy(Path("/lib64/ld-linux-x86-64.so.2").resolve(), root / "lib64/ld-linux-x86-64.so.2")


CLOUD_IMAGE = "archfleet-lab/host:amd64-cloud"


def ensure_cloud_image() -> str:
    """The cloud-kind host image (root login off, ``admin`` with passwordless sudo), built on the amd64 host image
    only when a cloud host is wanted."""
    base = ensure_host_image("amd64")
    dockerfile = resource_dir() / "cloud.Dockerfile"
    label = digest_of(dockerfile.read_bytes(), image_id(base).encode())
    if image_label(CLOUD_IMAGE) == label:
        return CLOUD_IMAGE
    say(f"building the lab host image {CLOUD_IMAGE}")
    with tempfile.TemporaryDirectory() as tmp:
        build(CLOUD_IMAGE, "amd64", Path(tmp), dockerfile, label, {"BASE": base})
    return CLOUD_IMAGE


def ensure_host_image(arch: str) -> str:
    image = host_image(arch)
    base = ensure_base_image(arch)
    res = resource_dir()
    common = [res / "host.Dockerfile", res / "lab-init", res / "docker.default"]
    inputs = [p.read_bytes() for p in common] + [image_id(base).encode(), HOST_PACKAGES[arch].encode()]
    if arch == "arm64":
        inputs.append((res / "arm64-engine.Dockerfile").read_bytes())
        inputs += [Path(b).read_bytes()[:4096] + str(Path(b).stat().st_size).encode() for b in X86_64_ENGINE_BINARIES]
    label = digest_of(*inputs)
    if image_label(image) == label:
        return image
    say(f"building the lab host image {image}")
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        shutil.copy2(res / "lab-init", context / "lab-init")
        shutil.copy2(res / "docker.default", context / "docker.default")
        stage = f"{image}-stage" if arch == "arm64" else image
        build(stage, arch, context, res / "host.Dockerfile", label, {"BASE": base, "PACKAGES": HOST_PACKAGES[arch]})
        if arch == "arm64":
            x86_64_engine_files(context)
            build(image, arch, context, res / "arm64-engine.Dockerfile", label, {"BASE": stage})
    return image
