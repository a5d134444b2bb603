"""Desired containers, rollout decisions and the command text they turn into: pure, no host."""

from __future__ import annotations

import shlex
from pathlib import Path

from archfleet.fleet import load_fleet
from archfleet.services.desired import DesiredContainer, decide, desired_container
from facts.services import ContainerState
from tasks import service_commands

FLEET = """\
registry: {address: "r.example:5000"}
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


def desired(
    tmp_path: Path, port: str = "1080", secret: str = "s3cret", digest: str = "sha256:aaaa"
) -> DesiredContainer:
    (tmp_path / "proxy.json.j2").write_text('{"port": {{ port }}, "id": "{{ secrets.id }}", "on": "{{ host.name }}"}')
    (tmp_path / "fleet.yaml").write_text(FLEET.replace("port: 1080", f"port: {port}"))
    spec = load_fleet(tmp_path / "fleet.yaml").services["proxy"]
    return desired_container(
        spec, tag="r.example:5000/proxy:1", repository="r.example:5000/proxy", digest=digest, host_name="a",
        platform="linux/arm64", secret_values={"id": secret}, fleet_context={"hosts": {"b": {"address": "10.0.0.2"}}},
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
    assert rendered.host_path == f"/etc/archfleet/services/proxy/{rendered.sha256[:16]}/proxy.json"
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


def test_replace_script_pulls_by_digest_labels_and_rolls_back(tmp_path: Path) -> None:
    d = desired(tmp_path)
    script = str(service_commands.replace_container(d))
    assert script.startswith("set -e; docker pull -q r.example:5000/proxy@sha256:aaaa >/dev/null; ")
    create = " ".join(shlex.quote(a) for a in service_commands.create_argv(d))
    assert f"{create} >/dev/null" in script
    for label in (f"archfleet.spec={d.spec_hash}", "archfleet.digest=sha256:aaaa", "archfleet.service=proxy"):
        assert f"--label {label}" in create
    assert "docker rename archfleet-proxy archfleet-proxy-previous" in script
    assert "docker rename archfleet-proxy-previous archfleet-proxy; docker start archfleet-proxy" in script
    assert "docker logs --tail 20 archfleet-proxy" in script and script.endswith("exit 1")
    assert "s3cret" not in script


def test_start_script_waits_for_health(tmp_path: Path) -> None:
    script = str(service_commands.start_container(desired(tmp_path)))
    assert script.startswith("docker start archfleet-proxy >/dev/null; ok=0;")
    assert "healthy) ok=1" in script
