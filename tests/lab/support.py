"""Running pyinfra, archfleet and commands on lab hosts, the way a user would."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from archfleet.lab.hosts import ssh_argv
from archfleet.lab.state import LabHost, LabPaths, load, state_dir

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAB_INVENTORY = str(PROJECT / "inventories" / "lab.py")


@dataclass
class PyinfraResult:
    returncode: int
    output: str

    def grand_total(self) -> dict[str, int]:
        """The `Grand total` row of pyinfra's results table: hosts-ops, success (changed), error, no change."""
        match = re.search(r"Grand total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", self.output)
        assert match, f"no results table in pyinfra output:\n{self.output[-3000:]}"
        values = [0 if v == "-" else int(v) for v in match.groups()]
        return dict(zip(("operations", "changed", "errors", "unchanged"), values, strict=True))

    def facts(self) -> dict[str, object]:
        """The JSON pyinfra prints for `pyinfra INVENTORY fact X`."""
        start = self.output.index("--> Fact data for:")
        body = self.output[self.output.index("{", start):]
        depth = 0
        for index, char in enumerate(body):
            depth += {"{": 1, "}": -1}.get(char, 0)
            if depth == 0:
                return json.loads(body[: index + 1])
        raise AssertionError("unterminated fact JSON")


def pyinfra(*args: str, inventory: str = LAB_INVENTORY, timeout: float = 900) -> PyinfraResult:
    result = subprocess.run(
        [str(BIN / "pyinfra"), "-y", inventory, *args],
        cwd=PROJECT, capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return PyinfraResult(result.returncode, result.stdout + result.stderr)


def archfleet(*args: str, timeout: float = 1800, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "archfleet"), *args], cwd=PROJECT, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if check:
        assert result.returncode == 0, f"archfleet {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


class HostBootstrap:
    """The host bootstrap (`pyinfra inventories/lab.py deploys/host.py`) of the lab's amd64 and arm64 hosts, run
    once per session for each host container: :meth:`ensure` bootstraps only the hosts whose container this
    session has not bootstrapped yet (a host added by ``lab up --amd64 3``, or made anew by ``lab reset`` or by
    ``lab down`` and ``up``, is a new container). That the bootstrap converges, and that a second run changes
    nothing, is test_foundation's test; the other modules only need hosts that are bootstrapped."""

    KINDS = ("amd64", "arm64")

    def __init__(self) -> None:
        self.done: set[str] = set()  # container ids

    def ensure(self) -> None:
        hosts = [h for h in load().hosts if h.kind in self.KINDS]
        ids = dict(zip((h.name for h in hosts), container_ids([h.container for h in hosts]), strict=True))
        new = [name for name, cid in ids.items() if cid not in self.done]
        if not new:
            return
        limits = [arg for name in new for arg in ("--limit", name)]
        bootstrap = pyinfra("deploys/host.py", *limits)
        assert bootstrap.returncode == 0, bootstrap.output[-3000:]
        self.done.update(ids[name] for name in new)


def container_ids(containers: list[str]) -> list[str]:
    if not containers:
        return []
    result = subprocess.run(["docker", "inspect", "--format", "{{.Id}}", *containers],
                            capture_output=True, text=True, check=True)
    return result.stdout.split()


def remove_every_service(directory: Path) -> subprocess.CompletedProcess[str]:
    """`sync --prune` of a fleet that declares no service: every archfleet container on the lab's hosts is removed
    (what a module's tests leave behind, or a run that was killed before its own clean-up)."""
    empty = directory / "no-services.yaml"
    empty.write_text(f"registry: {{lab: true}}\ninventory: {LAB_INVENTORY}\nservices: {{}}\n")
    return archfleet("sync", "--prune", "-f", str(empty))


def on_host(host: LabHost, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a shell command on a lab host over SSH (host key checked)."""
    paths = LabPaths(state_dir())
    return subprocess.run(
        ssh_argv(paths, "root", host.address, command), capture_output=True, text=True, timeout=timeout, check=False,
    )



def stop_times(host: LabHost, containers: list[str]) -> dict[str, float | None]:
    """Each container's stop time (epoch seconds; the lab hosts share this machine's clock), None while it runs."""
    result = on_host(host, "docker inspect --format '{{.Name}} {{.State.Running}} {{.State.FinishedAt}}' "
                           + " ".join(containers))
    assert result.returncode == 0, result.stderr
    times: dict[str, float | None] = {}
    for line in result.stdout.splitlines():
        name, running, stamp = line.split()
        whole, _, fraction = stamp.rstrip("Z").partition(".")
        moment = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC).timestamp()
        times[name.lstrip("/")] = None if running == "true" else moment + float(f"0.{fraction or 0}")
    return times

# `images:` entries of the project's images for test fleet files: built from the project's contexts, FROM the
# Debian base the lab publishes (listed first, so that a cold registry gets it before anything builds on it).
PROJECT_IMAGES = {
    "debian": "  debian: {local_image: 'archfleet-lab/debian:bookworm-{arch}', repository: archfleet/debian, "
              "tag: bookworm}\n",
    "v2ray": "  v2ray: {context: PROJECT/images/v2ray, repository: archfleet/v2ray, tag: '4.34',\n"
             "          build_args: {BASE_IMAGE: '{registry}/archfleet/debian:bookworm'}}\n",
    "buildbot-worker": "  buildbot-worker: {context: PROJECT/images/buildbot-worker,\n"
                       "    repository: archfleet/buildbot-worker, tag: '3.7',\n"
                       "    build_args: {BASE_IMAGE: '{registry}/archfleet/debian:bookworm'}}\n",
    "buildbot-master": "  buildbot-master: {context: PROJECT/images/buildbot-master,\n"
                       "    repository: archfleet/buildbot-master, tag: '3.7', platforms: [linux/amd64],\n"
                       "    build_args: {BASE_IMAGE: '{registry}/archfleet/debian:bookworm'}}\n",
}


def fleet_header(*images: str) -> str:
    """The start of a test fleet file on the lab: the lab's registry and inventory, and `images:` with the Debian
    base and the named project images. Append a `services:` section."""
    entries = "".join(PROJECT_IMAGES[name] for name in ("debian", *images))
    return (f"registry: {{lab: true}}\ninventory: {LAB_INVENTORY}\nimages:\n"
            + entries.replace("PROJECT", str(PROJECT)))
