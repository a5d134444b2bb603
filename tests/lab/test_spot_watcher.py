"""End to end on the lab: a spot-kind lab host plays a spot instance. The host deploy installs the interruption
watcher (converging twice: the second run changes nothing); the test runs its own IMDSv2 metadata endpoint on the
lab gateway; posting a rebalance recommendation, then an interruption notice, stops the host's three containers
within 10 seconds each time, in the declared order (CI runner first)."""

from __future__ import annotations

import datetime
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archfleet.lab.images import base_image
from archfleet.lab.state import LabHost, LabState
from tests.lab.support import archfleet, on_host, pyinfra
from tests.standins.instance_metadata import MetadataStandIn, serve

pytestmark = pytest.mark.lab

STOP_ORDER = ["archfleet-ci-runner", "archfleet-proxy", "archfleet-cache"]
SPOT_INVENTORY = str(Path(__file__).parent / "spot_lab_inventory.py")
# Exits at once on SIGTERM (sleep in the background, `wait` is interrupted by the trapped signal).
CONTAINER_COMMAND = "trap 'exit 0' TERM; sleep infinity & wait"


@pytest.fixture(scope="module")
def spot_host(lab: LabState) -> LabHost:
    if not lab.hosts_of("spot"):
        archfleet("lab", "up", "--spot", "1", check=True)
        from archfleet.lab.state import load

        lab = load()
    return lab.hosts_of("spot")[0]


@pytest.fixture(scope="module")
def metadata(lab: LabState) -> Iterator[tuple[MetadataStandIn, str]]:
    standin = MetadataStandIn()
    server = serve(standin, lab.gateway)
    yield standin, f"http://{lab.gateway}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def deploy(url: str) -> Any:
    os.environ["ARCHFLEET_TEST_METADATA_URL"] = url
    os.environ["ARCHFLEET_TEST_STOP_ORDER"] = ",".join(STOP_ORDER)
    try:
        return pyinfra("deploys/host.py", inventory=SPOT_INVENTORY)
    finally:
        del os.environ["ARCHFLEET_TEST_METADATA_URL"], os.environ["ARCHFLEET_TEST_STOP_ORDER"]


def load_base_image(host: LabHost) -> str:
    """The lab's local Debian image, copied to the host (docker save | ssh docker load): no registry needed."""
    from archfleet.lab.hosts import ssh_argv
    from archfleet.lab.state import LabPaths, state_dir

    image = base_image("amd64")
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    loaded = subprocess.run(ssh_argv(LabPaths(state_dir()), "root", host.address, "docker load -q"),
                            stdin=save.stdout, capture_output=True, text=True, timeout=300, check=False)
    assert save.wait() == 0 and loaded.returncode == 0, loaded.stderr
    return image


def start_containers(host: LabHost, image: str) -> None:
    names = " ".join(STOP_ORDER)
    result = on_host(host, f"for n in {names}; do docker rm -f $n >/dev/null 2>&1; "
                           f"docker run -d --name $n --network none {image} sh -c \"{CONTAINER_COMMAND}\" "
                           ">/dev/null || exit 1; done")
    assert result.returncode == 0, result.stderr


def finished_at(host: LabHost) -> dict[str, float | None]:
    """Each container's stop time (epoch seconds), None while it runs. The lab hosts share this machine's clock."""
    result = on_host(host, "docker inspect --format '{{.Name}} {{.State.Running}} {{.State.FinishedAt}}' "
                     + " ".join(STOP_ORDER))
    assert result.returncode == 0, result.stderr
    times: dict[str, float | None] = {}
    for line in result.stdout.split("\n"):
        if not line.strip():
            continue
        name, running, stamp = line.split()
        if running == "true":
            times[name.lstrip("/")] = None
            continue
        whole, _, fraction = stamp.rstrip("Z").partition(".")
        moment = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
        times[name.lstrip("/")] = moment.timestamp() + float(f"0.{fraction or 0}")
    return times


def wait_until_stopped(host: LabHost, posted: float, limit: float = 20) -> dict[str, float]:
    while True:
        times = finished_at(host)
        if all(t is not None for t in times.values()):
            return {name: t for name, t in times.items() if t is not None}
        assert time.time() - posted < limit, f"services still running {limit}s after the notice: {times}"
        time.sleep(0.5)


def test_watcher_stops_services_in_order_within_ten_seconds(
        lab: LabState, spot_host: LabHost, metadata: tuple[MetadataStandIn, str]) -> None:
    standin, url = metadata
    archfleet("lab", "reset", spot_host.name, check=True)
    first = deploy(url)
    assert first.returncode == 0, first.output
    assert first.grand_total()["changed"] == 3, first.output  # engine, registry login, watcher
    second = deploy(url)
    assert second.returncode == 0, second.output
    total = second.grand_total()
    assert total["changed"] == 0 and total["unchanged"] == total["operations"], second.output
    boot = on_host(spot_host, "ls /etc/rc2.d/ && /etc/init.d/archfleet-spot-watcher status")
    assert boot.returncode == 0 and "archfleet-spot-watcher" in boot.stdout, boot.stdout + boot.stderr

    start_containers(spot_host, load_base_image(spot_host))
    deadline = time.time() + 12
    while standin.authorized_reads == 0:
        assert time.time() < deadline, "the watcher never read the metadata endpoint"
        time.sleep(0.5)
    assert standin.token_requests > 0 and standin.unauthorized_reads == 0  # IMDSv2: token first, every time

    reactions = {}
    for kind in ("rebalance", "instance_action"):
        if kind == "rebalance":
            standin.rebalance = {"noticeTime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        else:
            start_containers(spot_host, base_image("amd64"))
            standin.instance_action = {"action": "terminate", "time": (datetime.datetime.now(datetime.UTC)
                                       + datetime.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}
        posted = time.time()
        stopped = wait_until_stopped(spot_host, posted)
        order = sorted(stopped, key=lambda name: stopped[name])
        assert order == STOP_ORDER, f"{kind}: stopped in the order {order}"
        assert stopped[STOP_ORDER[-1]] - posted <= 10, f"{kind}: all stopped {stopped[STOP_ORDER[-1]] - posted:.1f}s"
        reactions[kind] = (stopped[STOP_ORDER[0]] - posted, stopped[STOP_ORDER[-1]] - posted)

    log = on_host(spot_host, "cat /var/log/archfleet-spot-watcher.log").stdout
    assert "notice: rebalance-recommendation" in log and "notice: spot/instance-action" in log
    steps = [line.split(" ", 1)[1] for line in log.splitlines() if line.split(" ")[1:2] in (["stopping"], ["stopped"])]
    expected = [f"{verb} {name}" for name in STOP_ORDER for verb in ("stopping", "stopped")]
    assert steps == expected + expected, log
    for kind, (first_stop, last_stop) in reactions.items():
        print(f"\nwatcher reaction ({kind}): first service stopped {first_stop:.2f}s, last {last_stop:.2f}s "
              "after the notice was posted (poll interval 5s)")
    on_host(spot_host, f"docker rm -f {' '.join(STOP_ORDER)} >/dev/null")
    standin.instance_action = standin.rebalance = None


def test_without_spot_host_data_the_host_deploy_plans_no_watcher(lab: LabState, spot_host: LabHost) -> None:
    """The plain lab inventory gives spot-1 no spot data: the deploy's watcher block is skipped."""
    result = pyinfra("deploys/host.py", "--limit", spot_host.name)
    assert result.returncode == 0, result.output
    assert result.grand_total()["operations"] == 2 and "Spot interruption watcher" not in result.output
