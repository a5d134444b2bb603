"""The README's demo from nothing: after `archfleet lab down` there is no lab record, no host, no registry and no
package cache running (what a fresh machine has; only the caches of slow things stay: the rootfs tarballs, the
hosts' packages, the built images keyed by their inputs). `archfleet demo` brings the lab up before it reads the
fleet file (whose inventory is the lab's), passes its eight steps, and a second run changes nothing.

Self-contained: it leaves the lab up as the demo leaves it (the default two hosts, the demo's services running),
which is what the session's ``lab`` fixture starts from anyway (it prunes every service). `make test` runs this
module first, alongside the tests that need no lab: it is the suite's lab bring-up.
"""

from __future__ import annotations

import re
import time

import pytest

from archfleet.lab.state import LabPaths, state_dir
from tests.lab.support import archfleet

pytestmark = pytest.mark.lab

STEPS = 8


def sync_lines(stdout: str, command: str) -> dict[str, str]:
    """``COMMAND\\tHOST\\tRESULT`` lines: host -> result."""
    return {line.split("\t")[1]: line.split("\t")[2] for line in stdout.splitlines()
            if line.startswith(f"{command}\t") and line.count("\t") >= 2}


def test_demo_runs_from_a_lab_that_is_down_then_changes_nothing() -> None:
    down = archfleet("lab", "down", timeout=600)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not LabPaths(state_dir()).lab_json.exists()

    started = time.monotonic()
    first = archfleet("demo", timeout=3600)
    print(f"\ndemo from a lab that was down: {time.monotonic() - started:.0f}s")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    headers = re.findall(r"^== (\d)/8 ", first.stdout, re.M)
    assert headers == [str(n) for n in range(1, STEPS + 1)], first.stdout
    assert "the lab is not up" not in first.stdout + first.stderr
    reached = re.findall(r"^(\S+) \((amd64|arm64)\) vmess://\S+\s+ok: a local page fetched through it$", first.stdout,
                         re.M)
    assert {arch for _, arch in reached} == {"amd64", "arm64"}, first.stdout
    assert "demo: done in " in first.stdout

    second = archfleet("demo", timeout=1800)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert set(sync_lines(second.stdout, "bootstrap").values()) == {"no changes"}, second.stdout
    assert "all images up to date" in second.stdout, second.stdout
    synced = sync_lines(second.stdout, "sync")
    assert synced and set(synced.values()) == {"no changes"}, second.stdout
