"""The Ansible yardstick's inventory and config, written from what archfleet created on each host.

Pure apart from `write_project`: `container_options` turns `docker inspect` of the container archfleet runs (and of
its image) into community.docker.docker_container options that declare the same container, so the playbook
(`playbook.yml` beside this file) is the same service and a run after archfleet's sync must change nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PLAYBOOK = Path(__file__).with_name("playbook.yml")
# Files archfleet puts on a host for its services (content-addressed, root-only, mounted read-only).
MANAGED_FILES_ROOT = "/etc/archfleet/"


@dataclass(frozen=True)
class ManagedFileCopy:
    """A file the playbook's copy task keeps on the host: its path and its bytes, base64 (secrets included)."""

    dest: str
    content_b64: str


@dataclass(frozen=True)
class AnsibleHost:
    name: str
    address: str
    container: dict[str, Any]  # docker_container options
    files: list[ManagedFileCopy]


def duration(nanoseconds: int) -> str:
    """Docker's health check durations (ns) as docker_container takes them: ``2s``, ``500ms``, ``250us``."""
    for unit, size in (("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)):
        if nanoseconds % size == 0:
            return f"{nanoseconds // size}{unit}"
    raise ValueError(f"a health check duration of {nanoseconds} ns has no whole unit docker_container accepts")


def published_ports(port_bindings: dict[str, list[dict[str, str]] | None] | None) -> list[str]:
    """``{"10086/tcp": [{"HostIp": "", "HostPort": "10086"}]}`` -> ``["10086:10086"]`` (udp keeps its suffix)."""
    ports = []
    for container_port, bindings in sorted((port_bindings or {}).items()):
        number, _, protocol = container_port.partition("/")
        suffix = "" if protocol in ("", "tcp") else f"/{protocol}"
        for binding in bindings or []:
            host_ip = f"{binding['HostIp']}:" if binding.get("HostIp") else ""
            ports.append(f"{host_ip}{binding['HostPort']}:{number}{suffix}")
    return ports


def container_options(container: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """docker_container options for the container ``docker inspect`` shows, given ``docker image inspect`` of its
    image: what the container sets beyond its image (labels, env, command, entrypoint, health check), its ports,
    binds, network mode and restart policy, and the image exactly as the container names it (REPO@DIGEST)."""
    config, host_config, image_config = container["Config"], container["HostConfig"], image.get("Config") or {}
    image_labels = image_config.get("Labels") or {}
    image_env = set(image_config.get("Env") or [])
    options: dict[str, Any] = {
        "name": container["Name"].lstrip("/"),
        "image": config["Image"],
        "labels": {k: v for k, v in sorted((config.get("Labels") or {}).items()) if image_labels.get(k) != v},
        "env": dict(entry.split("=", 1) for entry in config.get("Env") or [] if entry not in image_env),
        "published_ports": published_ports(host_config.get("PortBindings")),
        "volumes": list(host_config.get("Binds") or []),
        "network_mode": host_config["NetworkMode"],
        "restart_policy": host_config["RestartPolicy"]["Name"] or "no",
    }
    check = config.get("Healthcheck")
    if check and check != image_config.get("Healthcheck"):
        options["healthcheck"] = {
            "test": check["Test"],
            **{key: duration(check[field]) for key, field in (
                ("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
            ) if check.get(field)},
            **({"retries": check["Retries"]} if check.get("Retries") else {}),
        }
    if config.get("Cmd") != image_config.get("Cmd"):
        options["command"] = config.get("Cmd") or []
    if config.get("Entrypoint") != image_config.get("Entrypoint"):
        options["entrypoint"] = config.get("Entrypoint") or []
    return options


def managed_sources(container: dict[str, Any]) -> list[str]:
    """The host paths of the container's binds that archfleet manages (its files and secrets)."""
    return [bind.split(":", 1)[0] for bind in container["HostConfig"].get("Binds") or []
            if bind.startswith(MANAGED_FILES_ROOT)]


def inventory_document(hosts: list[AnsibleHost], user: str, key_file: str) -> dict[str, Any]:
    """A YAML inventory: every host in ``all``, with its address, its container options and its files."""
    return {"all": {
        "vars": {
            "ansible_user": user,
            "ansible_ssh_private_key_file": key_file,
            "ansible_python_interpreter": "/usr/bin/python3",
        },
        "hosts": {host.name: {
            "ansible_host": host.address,
            "bench_container": host.container,
            "bench_files": [{"dest": f.dest, "content_b64": f.content_b64} for f in host.files],
        } for host in hosts},
    }}


def ansible_config(inventory: Path, forks: int, known_hosts: str) -> str:
    """ansible.cfg: pipelining on, N forks, host key checking on against the lab's known_hosts, no interpreter
    discovery (one command less per host). ControlMaster as Ansible's default; the control sockets live in
    ANSIBLE_SSH_CONTROL_PATH_DIR, which the benchmark sets fresh per run, so no run reuses another's connections."""
    ssh_args = " ".join([
        "-C", "-o ControlMaster=auto", "-o ControlPersist=60s", "-o BatchMode=yes", "-o StrictHostKeyChecking=yes",
        "-o IdentitiesOnly=yes", "-o ConnectTimeout=5", f"-o UserKnownHostsFile={known_hosts}",
    ])
    return (
        "[defaults]\n"
        f"inventory = {inventory}\n"
        f"forks = {forks}\n"
        "host_key_checking = True\n"
        "interpreter_python = /usr/bin/python3\n"
        "retry_files_enabled = False\n"
        "\n[ssh_connection]\n"
        "pipelining = True\n"
        f"ssh_args = {ssh_args}\n"
    )


def write_project(directory: Path, hosts: list[AnsibleHost], user: str, key_file: str, known_hosts: str) -> Path:
    """Write inventory.yml (it holds the secrets' bytes: 0600) and ansible.cfg into ``directory``; return the cfg."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    inventory = directory / "inventory.yml"
    fd = os.open(inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(inventory_document(hosts, user, key_file), handle, sort_keys=False)
    config = directory / "ansible.cfg"
    config.write_text(ansible_config(inventory, max(1, len(hosts)), known_hosts))
    return config
