"""`archfleet demo`: the whole main job on the local lab, start to finish, each step a re-runnable sync.

lab up -> host bootstrap -> images built for every platform and verified -> services synced -> proof per host
-> a CI build on every runner -> the v2ray proxy on each host reached from this machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from archfleet.errors import OperationFailed
from archfleet.fleet import Fleet, load_fleet
from archfleet.lab import lab
from archfleet.lab.ci import build_on_every_runner
from archfleet.lab.state import LabState
from archfleet.lab.system import ensure_packages
from archfleet.lab.v2ray_client import client_config_text, fetch_through_proxy
from archfleet.run import say
from archfleet.shipped import example_fleet_file
from archfleet.table import format_table

STEPS = 8


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run the whole main job on the local lab (the README's demo)")
    parser.add_argument("-f", "--fleet", type=Path, default=None, help="fleet file (default: the project's fleet.yaml)")
    parser.set_defaults(handler=run_demo)


def step(number: int, title: str) -> None:
    print(f"\n== {number}/{STEPS} {title}", flush=True)


def archfleet(*args: str) -> None:
    """Run an archfleet subcommand as a user would, its output going straight to the terminal."""
    result = subprocess.run([str(Path(sys.executable).parent / "archfleet"), *args], check=False)
    if result.returncode != 0:
        raise OperationFailed(f"`archfleet {' '.join(args)}` failed (exit {result.returncode}); see above")


def ci_build_on_every_runner(state: LabState, fleet: Fleet) -> None:
    if "ci-master" not in fleet.services:
        print("no ci-master service declared: skipped")
        return
    master = next(h for h in state.hosts if h.name in (fleet.services["ci-master"].hosts or [state.hosts[0].name]))
    runners = [h for h in state.hosts if h.kind in fleet.services["ci-runner"].groups]
    expected = {f"uname-{h.name}" for h in runners}
    results = build_on_every_runner(state, master.address, expected)
    print(format_table(("BUILDER", "BUILD", "RESULT", "UNAME -M"), [
        (name, number, "success" if outcome == 0 else "failure", machine) for name, number, outcome, machine in results
    ]))
    if not expected <= {r[0] for r in results if r[2] == 0}:
        raise OperationFailed(f"CI: not every runner built ({sorted(expected)}); see the table above")


def reach_v2ray(state: LabState, fleet: Fleet) -> None:
    if "v2ray" not in fleet.services:
        print("no v2ray service declared: skipped")
        return
    spec = fleet.services["v2ray"]
    port = int(spec.vars.get("port", "10086"))
    vmess_id = next(s for s in spec.secrets if s.name == "vmess_id").read()
    ensure_packages(("v2ray", "curl"))
    client_dir = Path.home() / ".config" / "archfleet"
    hosts = [h for h in state.hosts if h.kind in spec.groups or h.name in spec.hosts]
    failed = []
    with tempfile.TemporaryDirectory() as workdir:
        for index, host in enumerate(hosts):
            probe = fetch_through_proxy(host.address, port, vmess_id, state.gateway, Path(workdir))
            config = client_dir / f"v2ray-client-{host.name}.json"
            config.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            config.touch(mode=0o600)
            config.write_text(client_config_text(host.address, port, vmess_id, 1080 + index))
            verdict = "ok: a local page fetched through it" if probe.ok else f"FAILED ({probe.body or 'no answer'})"
            print(f"{host.name} ({host.arch}) vmess://{host.address}:{port}  {verdict}")
            print(f"    v2ray -config {config}   # then SOCKS5 on 127.0.0.1:{1080 + index}")
            if not probe.ok:
                failed.append(host.name)
    if failed:
        raise OperationFailed(f"v2ray: the proxy on {', '.join(failed)} did not answer")


def run_demo(args: argparse.Namespace) -> int:
    fleet_path = (args.fleet or example_fleet_file()).resolve()
    started = time.monotonic()

    # The lab comes first: the fleet file's inventory is the lab's, which the load reads (on a fresh machine there
    # is no lab to read until this step made it). Bad input still stops before any host is changed.
    step(1, "the local lab: an amd64 host, an arm64 host (QEMU), a private registry with TLS and auth")
    state = lab.up()
    lab.print_status_table(lab.status()[1])
    fleet = load_fleet(fleet_path)

    step(2, "host bootstrap (deploys/host.py): Docker engine, registry CA and login")
    archfleet("hosts", "bootstrap", "--limit", "amd64,arm64", "-f", str(fleet_path))

    step(3, "images: every platform built (natively where a host of that architecture exists) and published")
    archfleet("images", "build", "-f", str(fleet_path))

    step(4, "images: each published tag verified platform by platform")
    for name in fleet.images:
        archfleet("images", "verify", name, "-f", str(fleet_path))

    step(5, "services synced on every host, each pulling its own platform's image by digest")
    archfleet("sync", "-f", str(fleet_path))

    step(6, "proof: each host runs each service from the image built for its own architecture")
    archfleet("verify", "-f", str(fleet_path))

    step(7, "CI: a change built on every runner, each reporting its own machine")
    ci_build_on_every_runner(state, fleet)

    step(8, "v2ray: the proxy on each host, reached from this machine")
    reach_v2ray(state, fleet)

    print(f"\ndemo: done in {time.monotonic() - started:.0f}s. Re-run it: nothing changes the second time. "
          "`.venv/bin/archfleet lab down` removes the lab.")
    say("demo finished")
    return 0
