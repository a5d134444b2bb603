"""The shipped v2ray health check on the lab (day two, bug 2): the fleet file's check (fleet.yaml, the one
`archfleet init` writes) makes the container healthy without writing into the VMess port, so `archfleet logs v2ray`
shows no probe (a probe that connects is logged as a rejected client every interval)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from archfleet.lab.state import LabState
from tests.lab.support import (
    PROJECT,
    HostBootstrap,
    archfleet,
    fleet_header,
    on_host,
    remove_every_service,
)

pytestmark = pytest.mark.lab

WATCH_SECONDS = 30


def shipped_v2ray(directory: Path) -> dict[str, object]:
    """fleet.yaml's v2ray service as shipped, on the lab's groups, with its secret in ``directory``."""
    service = yaml.safe_load((PROJECT / "fleet.yaml").read_text())["services"]["v2ray"]
    service["groups"] = ["amd64", "arm64"]
    service["files"] = [{**f, "template": str(PROJECT / f["template"])} for f in service["files"]]
    service["secrets"] = {"vmess_id": {"file": str(directory / "vmess-id"), "generate": "uuid"}}
    return service  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def fleet_path(lab: LabState, tmp_path_factory: pytest.TempPathFactory,
               host_bootstrap: HostBootstrap) -> Iterator[Path]:
    host_bootstrap.ensure()
    directory = tmp_path_factory.mktemp("v2ray-check")
    path = directory / "fleet.yaml"
    path.write_text(fleet_header("v2ray") + "services:\n  v2ray: " + json.dumps(shipped_v2ray(directory)) + "\n")
    archfleet("images", "build", "-f", str(path), check=True)
    yield path
    remove_every_service(directory)


def test_the_shipped_check_is_healthy_and_leaves_no_probe_in_the_log(fleet_path: Path, lab: LabState) -> None:
    assert "/proc/net/tcp" in shipped_v2ray(fleet_path.parent)["healthcheck"]["command"]  # type: ignore[index]
    first = archfleet("sync", "-f", str(fleet_path))
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    second = archfleet("sync", "-f", str(fleet_path))
    assert second.returncode == 0 and "0 updated" in second.stdout, second.stdout + second.stderr[-3000:]
    hosts = lab.hosts_of("amd64") + lab.hosts_of("arm64")
    started = time.monotonic()
    time.sleep(WATCH_SECONDS)
    for host in hosts:  # Docker ran the check every 2 s meanwhile, and it passed
        health = on_host(host, "docker inspect --format '{{.State.Health.Status}} {{len .State.Health.Log}}' "
                               "archfleet-v2ray").stdout.split()
        assert health[0] == "healthy" and int(health[1]) >= 5, (host.name, health)
    logs = archfleet("logs", "v2ray", "-f", str(fleet_path), "--since", f"{int(time.monotonic() - started)}s")
    assert logs.returncode == 0, logs.stdout + logs.stderr
    assert "rejected" not in logs.stdout and "failed to read request header" not in logs.stdout, logs.stdout[-2000:]
