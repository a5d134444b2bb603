"""What the lab needs from this machine: Debian packages, a running dockerd, QEMU binfmt for arm64.

Each ``ensure_*`` checks first and only acts when something is missing, so a warm ``lab up`` costs
a few fast checks.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from archfleet.errors import OperationFailed
from archfleet.run import run, say, succeeds

LAB_PACKAGES = (
    "docker.io",
    "docker-registry",
    "qemu-user-static",
    "binfmt-support",
    "debootstrap",
    "openssh-client",
    "apache2-utils",
    "openssl",
    "containerd",
    "runc",
    "apt-cacher-ng",  # the lab hosts' package cache (archfleet/lab/apt_cache.py)
)

DOCKERD_LOG = Path("/var/log/archfleet-dockerd.log")
DOCKERD_PID = Path("/run/archfleet-dockerd.pid")


def missing_packages(packages: tuple[str, ...]) -> list[str]:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    installed = {
        line.split()[0] for line in result.stdout.splitlines() if line.endswith(" installed")
    }
    return [p for p in packages if p not in installed]


def ensure_packages(packages: tuple[str, ...] = LAB_PACKAGES) -> None:
    missing = missing_packages(packages)
    if not missing:
        return
    say(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


def dockerd_answers() -> bool:
    return succeeds(["docker", "version", "--format", "{{.Server.Version}}"], timeout=20)


def ensure_dockerd() -> None:
    """Start Debian's dockerd by hand when nothing answers on the socket (there is no systemd here)."""
    if dockerd_answers():
        return
    say("starting dockerd")
    log = DOCKERD_LOG.open("ab")
    process = subprocess.Popen(
        ["dockerd", "--pidfile", str(DOCKERD_PID)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if dockerd_answers():
            return
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise OperationFailed(f"dockerd did not come up; see {DOCKERD_LOG}")


def ensure_binfmt() -> None:
    """Let this x86_64 kernel run arm64 binaries, in containers too (the F flag)."""
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)])
    entry = binfmt / "qemu-aarch64"
    if not entry.exists() or "enabled" not in entry.read_text():
        run(["update-binfmts", "--enable", "qemu-aarch64"])
    flags = [line for line in entry.read_text().splitlines() if line.startswith("flags:")]
    if not flags or "F" not in flags[0]:
        raise OperationFailed(f"{entry}: qemu-aarch64 is registered without the F flag ({flags})")
