"""The Ansible yardstick declares the container archfleet runs: docker inspect -> docker_container options."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.benchmarks.ansible.inventory import (
    PLAYBOOK,
    AnsibleHost,
    ManagedFileCopy,
    container_options,
    duration,
    managed_sources,
    published_ports,
    write_project,
)

CONFIG_BIND = "/etc/archfleet/services/v2ray/0123456789abcdef/config.json:/etc/v2ray/config.json:ro"
SECRET_BIND = "/etc/archfleet/services/v2ray/fedcba9876543210/vmess_id:/run/secrets/vmess_id:ro"


def image_inspect() -> dict[str, Any]:
    """The parts of `docker image inspect` of the v2ray image that the conversion reads."""
    return {"Config": {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["v2ray", "-config", "/etc/v2ray/config.json"],
        "Entrypoint": None,
        "Labels": {"archfleet.images.input": "9f1c"},
    }}


def container_inspect() -> dict[str, Any]:
    """The parts of `docker inspect` of archfleet's v2ray container that the conversion reads."""
    return {
        "Name": "/archfleet-v2ray",
        "Config": {
            "Image": "172.28.82.1:5000/archfleet/v2ray@sha256:" + "ab" * 32,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LOG=warning"],
            "Cmd": ["v2ray", "-config", "/etc/v2ray/config.json"],
            "Entrypoint": None,
            "Labels": {"archfleet.images.input": "9f1c", "archfleet.service": "v2ray", "archfleet.spec": "1234"},
            "Healthcheck": {"Test": ["CMD-SHELL", "bash -c 'echo > /dev/tcp/127.0.0.1/10086'"],
                            "Interval": 2_000_000_000, "Timeout": 5_000_000_000, "StartPeriod": 0, "Retries": 20},
        },
        "HostConfig": {
            "Binds": ["/srv/data:/data", CONFIG_BIND, SECRET_BIND],
            "NetworkMode": "bridge",
            "PortBindings": {"10086/tcp": [{"HostIp": "", "HostPort": "10086"}],
                             "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}]},
            "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
        },
    }


def test_options_declare_what_the_container_sets_beyond_its_image() -> None:
    options = container_options(container_inspect(), image_inspect())
    assert options == {
        "name": "archfleet-v2ray",
        "image": "172.28.82.1:5000/archfleet/v2ray@sha256:" + "ab" * 32,
        "labels": {"archfleet.service": "v2ray", "archfleet.spec": "1234"},
        "env": {"LOG": "warning"},
        "published_ports": ["10086:10086", "127.0.0.1:5353:53/udp"],
        "volumes": ["/srv/data:/data", CONFIG_BIND, SECRET_BIND],
        "network_mode": "bridge",
        "restart_policy": "unless-stopped",
        "healthcheck": {"test": ["CMD-SHELL", "bash -c 'echo > /dev/tcp/127.0.0.1/10086'"],
                        "interval": "2s", "timeout": "5s", "retries": 20},
    }


def test_a_command_or_entrypoint_of_its_own_is_declared() -> None:
    container = container_inspect()
    container["Config"]["Cmd"] = ["v2ray", "run"]
    container["Config"]["Entrypoint"] = ["/usr/bin/env"]
    options = container_options(container, image_inspect())
    assert (options["command"], options["entrypoint"]) == (["v2ray", "run"], ["/usr/bin/env"])


def test_a_health_check_of_the_image_is_not_repeated() -> None:
    container, image = container_inspect(), image_inspect()
    image["Config"]["Healthcheck"] = container["Config"]["Healthcheck"]
    assert "healthcheck" not in container_options(container, image)


def test_durations() -> None:
    assert [duration(2_000_000_000), duration(500_000_000), duration(250_000)] == ["2s", "500ms", "250us"]
    with pytest.raises(ValueError, match="no whole unit"):
        duration(1_500)


def test_ports_without_bindings() -> None:
    assert published_ports(None) == []
    assert published_ports({"80/tcp": None}) == []


def test_only_archfleet_files_are_copied() -> None:
    assert managed_sources(container_inspect()) == [CONFIG_BIND.split(":")[0], SECRET_BIND.split(":")[0]]


def test_the_playbook_reads_only_options_the_inventory_gives() -> None:
    """Every `bench_container.KEY` the playbook uses is one container_options can produce."""
    text = PLAYBOOK.read_text()
    used = set(re.findall(r"bench_container\.(\w+)", text))
    produced = set(container_options(container_inspect(), image_inspect())) | {"command", "entrypoint"}
    assert used and used <= produced, used - produced
    assert yaml.safe_load(text)[0]["gather_facts"] is False


def test_project_files(tmp_path: Path) -> None:
    host = AnsibleHost("amd64-1", "172.28.82.10", container_options(container_inspect(), image_inspect()),
                       [ManagedFileCopy(SECRET_BIND.split(":")[0], "c2VjcmV0")])
    config = write_project(tmp_path / "ansible", [host, host], "root", "/lab/ssh/id_ed25519", "/lab/ssh/known_hosts")
    inventory = tmp_path / "ansible" / "inventory.yml"
    assert stat.S_IMODE(inventory.stat().st_mode) == 0o600  # it holds the secrets' bytes
    document = yaml.safe_load(inventory.read_text())
    assert document["all"]["hosts"]["amd64-1"]["bench_files"] == [{"dest": SECRET_BIND.split(":")[0],
                                                                    "content_b64": "c2VjcmV0"}]
    assert document["all"]["vars"]["ansible_ssh_private_key_file"] == "/lab/ssh/id_ed25519"
    text = config.read_text()
    assert "forks = 2\n" in text and "pipelining = True\n" in text
    assert "StrictHostKeyChecking=yes" in text and "UserKnownHostsFile=/lab/ssh/known_hosts" in text
