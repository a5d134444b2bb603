"""Desired containers, rollout decisions and the command text they turn into: pure, no host."""

from __future__ import annotations

from pathlib import Path

import pytest

from archfleet.facts.service_reads import ContainerState, ServicesStateValue
from archfleet.fleet import load_fleet
from archfleet.services.desired import (
    DesiredContainer,
    FleetContext,
    SecretValues,
    decide,
    desired_container,
    file_version,
)
from archfleet.sync.plan import batches, plan_host
from archfleet.sync.steps import finalize_command
from archfleet.tasks import service_commands

FLEET = """\
registry: {address: "r.example:5000"}
inventory: inventory.py
services:
  proxy:
    image: r.example:5000/proxy:1
    groups: [all]
    command: "run -config /etc/proxy.json"
    environment: {PEER: "{{ hosts['b'].address }}"}
    files: [{template: proxy.json.j2, mount: /etc/proxy.json}]
    vars: {port: 1080}
    secrets: {id: {env: PROXY_ID}}
    healthcheck: {command: "test -s /etc/proxy.json", interval: 1, retries: 3}
"""


KEY = bytes(range(32))  # the fleet's secret version key


@pytest.fixture(autouse=True)
def proxy_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_ID", "from-the-environment")


def desired(
    tmp_path: Path, port: str = "1080", secret: str = "s3cret", digest: str = "sha256:aaaa"
) -> DesiredContainer:
    (tmp_path / "proxy.json.j2").write_text('{"port": {{ port }}, "id": "{{ secrets.id }}", "on": "{{ host.name }}"}')
    (tmp_path / "fleet.yaml").write_text(FLEET.replace("port: 1080", f"port: {port}"))
    (tmp_path / "inventory.py").write_text("hosts = ['a', ('b', {'ssh_hostname': '10.0.0.2'})]\n")
    spec = load_fleet(tmp_path / "fleet.yaml").services["proxy"]
    secrets = SecretValues({"proxy": spec})
    secrets.provide("proxy", "id", secret)
    context = FleetContext(hosts={"b": {"address": "10.0.0.2"}}, service_hosts={}, secrets=secrets, version_key=KEY)
    return desired_container(
        spec, tag="r.example:5000/proxy:1", repository="r.example:5000/proxy", digest=digest, host_name="a",
        platform="linux/arm64", context=context,
    )


def state(d: DesiredContainer, **changes: str) -> ContainerState:
    value: ContainerState = {"name": d.name, "status": "running", "service": d.service, "spec": d.spec_hash,
                             "digest": d.digest}
    value.update(changes)  # type: ignore[typeddict-item]
    return value


def test_files_and_secrets_are_content_addressed_root_only_mounts(tmp_path: Path) -> None:
    d = desired(tmp_path)
    rendered = next(f for f in d.files if not f.secret)
    assert rendered.content == b'{"port": 1080, "id": "s3cret", "on": "a"}'
    version = file_version(KEY, "proxy", "proxy.json", rendered.content, "0:0", "0600")
    assert rendered.host_path == f"/etc/archfleet/services/proxy/{version}/proxy.json"
    secret = next(f for f in d.files if f.secret)
    assert secret.mount == "/run/secrets/id" and secret.content == b"s3cret"
    assert f"{secret.host_path}:/run/secrets/id:ro" in d.create_args
    assert "s3cret" not in " ".join(d.create_args + d.command), "a secret must never be on a command line"
    assert "PEER=10.0.0.2" in d.create_args
    assert d.image == "r.example:5000/proxy@sha256:aaaa" and d.command == ["run", "-config", "/etc/proxy.json"]


def test_decisions(tmp_path: Path) -> None:
    d = desired(tmp_path)
    assert decide(d, None).action == "create"
    assert decide(d, state(d)).action == "none"
    assert decide(d, state(d, status="exited")).action == "start"
    moved = decide(d, state(d, digest="sha256:bbbb"))
    assert moved.action == "recreate" and "image digest bbbb -> aaaa" in moved.reason
    assert decide(d, state(d, spec="0123")).action == "recreate"


def test_config_or_secret_change_changes_the_spec_hash_and_nothing_else_does(tmp_path: Path) -> None:
    base = desired(tmp_path)
    assert desired(tmp_path).spec_hash == base.spec_hash
    assert desired(tmp_path, port="1081").spec_hash != base.spec_hash
    assert desired(tmp_path, secret="other").spec_hash != base.spec_hash
    assert desired(tmp_path, digest="sha256:cccc").spec_hash == base.spec_hash, "the digest is compared on its own"


def host_state(*containers: ContainerState, files: dict[str, str] | None = None) -> ServicesStateValue:
    return {"platform": "linux/arm64", "machine": "aarch64", "engine_running": True,
            "containers": {c["name"]: c for c in containers}, "files": files or {}, "file_modes": {},
            "login_ages": {}}


def uploaded(d: DesiredContainer) -> dict[str, str]:
    return {f.host_path: f.sha256 for f in d.files}


def test_plan_decides_each_service_and_keeps_orphans_unless_pruning(tmp_path: Path) -> None:
    d = desired(tmp_path)
    fresh = plan_host("a", host_state(), [d], prune=False)
    assert [(s.service, s.action) for s in fresh.steps] == [("proxy", "create")]
    assert {f.host_path for f in fresh.files} == {f.host_path for f in d.files}
    assert fresh.steps[0].pulls == d.image

    same = plan_host("a", host_state(state(d), files=uploaded(d)), [d], prune=False)
    assert not same.changed and [s.action for s in same.unchanged] == ["none"]

    orphan: ContainerState = {"name": "archfleet-old", "status": "running", "service": "old", "spec": "x",
                              "digest": "y"}
    kept = plan_host("a", host_state(state(d), orphan, files=uploaded(d)), [d], prune=False)
    assert not kept.changed and [o.service for o in kept.orphans] == ["old"]
    pruned = plan_host("a", host_state(state(d), orphan, files=uploaded(d)), [d], prune=True)
    assert [(s.service, s.action, s.containers) for s in pruned.steps] == [("old", "remove", ("archfleet-old",))]


def test_a_missing_mounted_file_recreates(tmp_path: Path) -> None:
    d = desired(tmp_path)
    plan = plan_host("a", host_state(state(d)), [d], prune=False)
    assert [s.action for s in plan.steps] == ["recreate"] and "mounted file" in plan.steps[0].reason


def test_an_interrupted_rollout_is_repaired(tmp_path: Path) -> None:
    d = desired(tmp_path)
    files = uploaded(d)
    previous = state(d, name="archfleet-proxy-previous", status="exited")
    # The new container never started: the previous one (up to date) is put back.
    restore = plan_host("a", host_state(state(d, status="created", spec="new"), previous, files=files), [d], False)
    assert [s.action for s in restore.steps] == ["restore"]
    # The previous container is out of date: it is replaced (the switch script puts it back first).
    stale = plan_host("a", host_state({**previous, "spec": "old"}, files=files), [d], False)
    assert [s.action for s in stale.steps] == ["recreate"] and "interrupted" in stale.steps[0].reason
    # The new container runs and is up to date: only the leftover goes.
    cleanup = plan_host("a", host_state(state(d), previous, files=files), [d], False)
    assert [s.action for s in cleanup.steps] == ["cleanup"]
    assert not cleanup.orphans, "a rollout's previous container is not an orphan"


def test_only_a_step_that_leaves_something_behind_gets_a_finalize(tmp_path: Path) -> None:
    """A first create (or a start) keeps no previous container: unless the host has file versions of the service
    that the new container does not mount, its host needs no finalize command (one SSH command saved)."""
    d = desired(tmp_path)
    fresh = plan_host("a", host_state(), [d], prune=False)
    assert not fresh.steps[0].tidy and finalize_command(fresh, list(fresh.steps)) is None
    start = plan_host("a", host_state(state(d, status="exited"), files=uploaded(d)), [d], False)
    assert start.steps[0].action == "start" and finalize_command(start, list(start.steps)) is None
    older = {"/etc/archfleet/services/proxy/0123456789abcdef/proxy.json": "0" * 64}
    again = plan_host("a", host_state(files=older), [d], prune=False)
    command = finalize_command(again, list(again.steps))
    assert again.steps[0].action == "create" and command is not None and "0123456789abcdef" not in str(command)
    other_service = {"/etc/archfleet/services/web/0123456789abcdef/site.conf": "0" * 64}
    beside = plan_host("a", host_state(files=other_service), [d], prune=False)
    assert finalize_command(beside, list(beside.steps)) is None, "another service's files are not this one's"
    moved = plan_host("a", host_state(state(d, digest="sha256:bbbb"), files=uploaded(d)), [d], False)
    assert moved.steps[0].action == "recreate" and finalize_command(moved, list(moved.steps)) is not None


@pytest.mark.parametrize(("hosts", "canary", "size", "expected"), [
    (["a", "b", "c", "d"], 1, 3, [["a"], ["b", "c", "d"]]),
    (["a", "b", "c", "d"], 1, 1, [["a"], ["b"], ["c"], ["d"]]),
    (["a", "b", "c", "d"], 0, 2, [["a", "b"], ["c", "d"]]),
    (["a", "b", "c"], 2, 5, [["a", "b"], ["c"]]),
    (["a"], 1, 1, [["a"]]),
    ([], 1, 1, []),
])
def test_batches(hosts: list[str], canary: int, size: int, expected: list[list[str]]) -> None:
    assert batches(hosts, canary, size) == expected


def test_step_scripts_take_every_value_as_an_argument(tmp_path: Path) -> None:
    """Values from the fleet file reach the step scripts as quoted arguments; the script text is fixed."""
    d = desired(tmp_path)
    first = service_commands.switch_container(d, 60, 300)
    other = service_commands.switch_container(desired(tmp_path, port="1081", digest="sha256:bbbb"), 60, 300)
    assert first.bits[2].obj == other.bits[2].obj, "the script text does not depend on the fleet file"
    assert "s3cret" not in str(first)
    # the health check the wait runs itself and its timeout are arguments too (after the wait's bound)
    arguments = [bit.obj for bit in first.bits[4:]]
    assert arguments[:6] == [d.name, d.previous_name, "29", "test -s /etc/proxy.json", "5", "60"], arguments
    assert "test -s" not in first.bits[2].obj
    started = service_commands.start_container(d, 300)
    assert [bit.obj for bit in started.bits[4:]] == [d.name, "29", "test -s /etc/proxy.json", "5"]
