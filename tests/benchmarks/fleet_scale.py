"""Benchmark: the lab and a service sync at 16 amd64 hosts. Prints figures; asserts nothing about time.

    .venv/bin/python -m tests.benchmarks.fleet_scale [--amd64 16]

Scales the running lab to N amd64 hosts, bootstraps them (deploys/host.py), syncs v2ray onto all of them, then
times the no-op runs and counts the commands pyinfra runs per host in a no-op sync. Puts the lab's host counts
back afterwards.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from archfleet.lab import lab
from archfleet.lab.state import load
from tests.lab.support import LAB_INVENTORY, PROJECT, archfleet, fleet_header, pyinfra

T = TypeVar("T")

SERVICES = """\
services:
  v2ray:
    image: v2ray
    groups: [amd64]
    ports: [10086]
    files: [{{template: {project}/deploys/templates/v2ray/config.json.j2, mount: /etc/v2ray/config.json}}]
    vars: {{port: 10086}}
    secrets: {{vmess_id: {{file: vmess-id, generate: uuid}}}}
    healthcheck: {{command: "bash -c 'echo > /dev/tcp/127.0.0.1/10086'", interval: 2, retries: 20}}
"""


def timed(label: str, action: Callable[[], T]) -> T:
    started = time.monotonic()
    result = action()
    print(f"{label:<48} {time.monotonic() - started:7.1f} s", flush=True)
    return result


def used_memory_mib() -> float:
    """This machine's memory in use (MemTotal - MemAvailable). docker stats reads 0 here: the lab hosts share
    the cgroup v1 hierarchy, so the lab's footprint is measured as the machine's difference."""
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return (int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--amd64", type=int, default=16)
    args = parser.parse_args()
    before = load().counts if Path("/var/lib/archfleet/lab/lab.json").exists() else None
    timed("lab up (warm, as it is)", lab.up)
    memory_before = used_memory_mib()
    timed(f"lab up --amd64 {args.amd64}", lambda: lab.up(amd64=args.amd64))
    timed(f"lab up --amd64 {args.amd64} again (no-op)", lambda: lab.up(amd64=args.amd64))
    first = timed("host bootstrap, first run (amd64 group)", lambda: pyinfra("deploys/host.py", "--limit", "amd64"))
    assert first.returncode == 0, first.output[-2000:]
    timed("host bootstrap, no-op run", lambda: pyinfra("deploys/host.py", "--limit", "amd64"))
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Path(tmp) / "fleet.yaml"
        fleet.write_text(fleet_header("v2ray") + SERVICES.format(project=PROJECT))
        archfleet("images", "build", "-f", str(fleet), check=True)
        synced = timed(f"archfleet sync, first ({args.amd64} hosts)", lambda: archfleet("sync", "-f", str(fleet)))
        assert synced.returncode == 0, synced.stderr[-2000:]
        timed(f"archfleet sync, no-op ({args.amd64} hosts)", lambda: archfleet("sync", "-f", str(fleet)))
        verbose = subprocess.run(
            [str(PROJECT / ".venv/bin/pyinfra"), "-y", "-vv", LAB_INVENTORY, "deploys/services.py", "--limit", "amd64"],
            cwd=PROJECT, capture_output=True, text=True, env={"ARCHFLEET_FLEET": str(fleet), "PATH": "/usr/bin:/bin"},
            check=False,
        )
        commands = Counter(m[1] for m in re.finditer(r"^\[([\w-]+)\]\s+>>> ", verbose.stdout + verbose.stderr, re.M))
        print(f"{'commands per host in a no-op sync':<48} {sorted(set(commands.values()))} over {len(commands)} hosts")
        print(f"{'memory in use, added by the scaled lab + v2ray':<48} {used_memory_mib() - memory_before:7.0f} MiB")
        empty = Path(tmp) / "empty.yaml"
        empty.write_text(f"registry: {{lab: true}}\ninventory: {LAB_INVENTORY}\n")
        archfleet("sync", "-f", str(empty))
    if before is not None:
        timed("lab up (counts put back)", lambda: lab.up(**before))


if __name__ == "__main__":
    main()
