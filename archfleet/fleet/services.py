"""The ``services`` section: containerized services and where they run.

    services:
      v2ray:
        image: v2ray                 # an image declared under `images:`, or a full reference (REPO:TAG)
        groups: [amd64, arm64]       # inventory groups it runs on (and/or `hosts: [name, ...]`)
        command: [run, -config, /etc/v2ray/config.json]
        network: host                # host (default) or bridge
        ports: ["10086/tcp"]         # host ports it uses; with bridge: "HOST:CONTAINER[/proto]"
        environment: {TZ: UTC}
        volumes: ["/srv/v2ray:/var/lib/v2ray"]
        files:                       # rendered on this machine (Jinja2), uploaded root-only, mounted read-only
          - template: services/v2ray/config.json.j2
            mount: /etc/v2ray/config.json
        vars: {port: 10086}          # template variables (plus `secrets`, `host` and `service`)
        secrets:                     # read locally, never written in this file; mounted read-only at mount
          vmess_id: {file: ~/.config/archfleet/v2ray-vmess-id, generate: uuid, mount: /run/secrets/vmess_id}
        healthcheck: {command: "bash -c 'echo > /dev/tcp/127.0.0.1/10086'", interval: 2, retries: 10}
        restart: unless-stopped
        stop_order: 50               # lower stops first when a spot host is interrupted
"""

from __future__ import annotations

import os
import re
import secrets as secrets_module
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from archfleet.errors import InputError
from archfleet.schema import Mapping, Node

if TYPE_CHECKING:
    from archfleet.fleet import Fleet

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
NETWORK_MODES = ("host", "bridge")
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
GENERATORS = ("uuid", "token")
PORT_PATTERN = re.compile(r"^(?:(?P<host>\d{1,5}):)?(?P<container>\d{1,5})(?:/(?P<proto>tcp|udp))?$")


@dataclass(frozen=True)
class PortSpec:
    host_port: int
    container_port: int
    protocol: str
    node: Node = field(compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.host_port}:{self.container_port}/{self.protocol}"


@dataclass(frozen=True)
class FileSpec:
    template: Path
    mount: str
    node: Node = field(compare=False, repr=False)


@dataclass(frozen=True)
class SecretSpec:
    name: str
    mount: str
    file: Path | None
    env: str | None
    generate: str | None
    node: Node = field(compare=False, repr=False)

    def read(self) -> str:
        """The secret's value, from its file or environment variable (a missing file is generated if asked)."""
        where = f"{self.node.where}: {self.node.path}"
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise InputError(f"{where}: environment variable {self.env} is not set")
            return value
        assert self.file is not None
        if not self.file.exists() and self.generate:
            self.file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            value = str(uuid.uuid4()) if self.generate == "uuid" else secrets_module.token_urlsafe(24)
            fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(value + "\n")
        try:
            return self.file.read_text().strip()
        except OSError as error:
            raise InputError(f"{where}: cannot read {self.file}: {error.strerror}") from None


@dataclass(frozen=True)
class HealthcheckSpec:
    command: str
    interval: int
    retries: int
    start_period: int
    timeout: int


@dataclass
class ServiceSpec:
    name: str
    image: str  # the name of an image under `images:`, or a full reference
    groups: list[str]
    hosts: list[str]
    command: list[str] | None
    entrypoint: list[str] | None
    network: str
    ports: list[PortSpec]
    environment: dict[str, str]
    volumes: list[str]
    files: list[FileSpec]
    vars: dict[str, str]
    secrets: list[SecretSpec]
    healthcheck: HealthcheckSpec | None
    restart: str
    stop_order: int
    node: Node = field(repr=False)

    @property
    def container_name(self) -> str:
        return f"archfleet-{self.name}"


def _command(section: Mapping, key: str) -> list[str] | None:
    node = section.get(key)
    if node is None or node.value is None:
        return None
    if isinstance(node.value, str):
        import shlex

        return shlex.split(node.value)
    return section.strings(key)


def _ports(section: Mapping, network: str) -> list[PortSpec]:
    ports = []
    for item in section.sequence("ports"):
        text = str(item.value)
        match = PORT_PATTERN.match(text)
        if not match or isinstance(item.value, bool):
            item.fail(f"expected a port like 8080, 8080/udp or 8080:80/tcp, got {item.kind}")
        container_port = int(match["container"])
        host_port = int(match["host"] or container_port)
        if network == "host" and match["host"] and host_port != container_port:
            item.fail("with network: host a container listens on the host's port itself; map ports with bridge")
        for port in (host_port, container_port):
            if not 1 <= port <= 65535:
                item.fail(f"port {port} is out of range")
        ports.append(PortSpec(host_port, container_port, match["proto"] or "tcp", item))
    return ports


def _files(section: Mapping, base_dir: Path) -> list[FileSpec]:
    files = []
    for item in section.sequence("files"):
        entry = Mapping(item)
        template = base_dir / entry.string("template")
        mount = entry.string("mount")
        entry.done()
        if not template.is_file():
            item.fail(f"template {template} does not exist")
        if not mount.startswith("/"):
            item.fail(f"mount {mount!r} must be an absolute path in the container")
        files.append(FileSpec(template, mount, item))
    return files


def _secrets(section: Mapping | None, base_dir: Path) -> list[SecretSpec]:
    if section is None:
        return []
    result = []
    for name, node in section.entries():
        entry = Mapping(node)
        file_value = entry.string("file", None)
        env = entry.string("env", None)
        generate = entry.string("generate", None)
        mount = entry.string("mount", f"/run/secrets/{name}")
        entry.done()
        if (file_value is None) == (env is None):
            node.fail("a secret comes from exactly one of `file` or `env`")
        if generate is not None and generate not in GENERATORS:
            entry.fail("generate", f"expected one of {', '.join(GENERATORS)}")
        if generate and env:
            entry.fail("generate", "only a secret read from a file can be generated")
        path = (base_dir / Path(file_value).expanduser()) if file_value else None
        result.append(SecretSpec(name, mount, path, env, generate, node))
    return result


def _healthcheck(section: Mapping | None) -> HealthcheckSpec | None:
    if section is None:
        return None
    command = section.string("command")
    spec = HealthcheckSpec(
        command=command,
        interval=section.integer("interval", 2),
        retries=section.integer("retries", 15),
        start_period=section.integer("start_period", 0),
        timeout=section.integer("timeout", 5),
    )
    section.done()
    return spec


def parse_service(name: str, node: Node, fleet: Fleet) -> ServiceSpec:
    if not NAME_PATTERN.match(name):
        node.fail("a service name is lower-case letters, digits, '.', '_' and '-'")
    section = Mapping(node)
    image = section.string("image")
    if image not in fleet.images and ":" not in image and "@" not in image:
        section.fail("image", f"{image!r} is neither an image declared under `images:` nor a REPO:TAG reference")
    network = section.string("network", "host")
    if network not in NETWORK_MODES:
        section.fail("network", f"expected one of {', '.join(NETWORK_MODES)}, got {network!r}")
    restart = section.string("restart", "unless-stopped")
    if restart not in RESTART_POLICIES:
        section.fail("restart", f"expected one of {', '.join(RESTART_POLICIES)}, got {restart!r}")
    spec = ServiceSpec(
        name=name,
        image=image,
        groups=section.strings("groups", []),
        hosts=section.strings("hosts", []),
        command=_command(section, "command"),
        entrypoint=_command(section, "entrypoint"),
        network=network,
        ports=_ports(section, network),
        environment=section.string_map("environment"),
        volumes=section.strings("volumes", []),
        files=_files(section, fleet.base_dir),
        vars=section.string_map("vars"),
        secrets=_secrets(section.mapping("secrets"), fleet.base_dir),
        healthcheck=_healthcheck(section.mapping("healthcheck")),
        restart=restart,
        stop_order=section.integer("stop_order", 50),
        node=node,
    )
    if not spec.groups and not spec.hosts:
        node.fail("a service needs `groups` or `hosts` to run on")
    for volume in spec.volumes:
        if ":" not in volume:
            section.fail("volumes", f"{volume!r}: expected HOST_PATH:CONTAINER_PATH[:ro]")
    mounts = [f.mount for f in spec.files] + [s.mount for s in spec.secrets]
    duplicates = {m for m in mounts if mounts.count(m) > 1}
    if duplicates:
        node.fail(f"two files or secrets mount at {sorted(duplicates)[0]}")
    section.done()
    return spec


def parse_services(section: Mapping | None, fleet: Fleet) -> dict[str, ServiceSpec]:
    if section is None:
        return {}
    return {name: parse_service(name, node, fleet) for name, node in section.entries()}


def check_placement(services: dict[str, ServiceSpec], groups: dict[str, list[str]]) -> dict[str, list[ServiceSpec]]:
    """Which services run on which host, given the inventory's ``groups`` (group -> host names).

    Errors (file, line, key): a group or host the inventory does not have; a port two services use on one host.
    """
    all_hosts = {h for members in groups.values() for h in members}
    placement: dict[str, list[ServiceSpec]] = {h: [] for h in sorted(all_hosts)}
    for spec in services.values():
        section = Mapping(spec.node)
        targets: set[str] = set()
        for group in spec.groups:
            if group not in groups:
                section.fail("groups", f"no inventory group {group!r} (groups: {', '.join(sorted(groups))})")
            targets.update(groups[group])
        for name in spec.hosts:
            if name not in all_hosts:
                section.fail("hosts", f"no inventory host {name!r}")
            targets.add(name)
        for host in targets:
            placement[host].append(spec)
    for host, specs in placement.items():
        used: dict[tuple[int, str], ServiceSpec] = {}
        for spec in specs:
            for port in spec.ports:
                key = (port.host_port, port.protocol)
                if key in used:
                    port.node.fail(
                        f"port {port.host_port}/{port.protocol} on {host} is used by services "
                        f"{used[key].name!r} and {spec.name!r}"
                    )
                used[key] = spec
    return placement
