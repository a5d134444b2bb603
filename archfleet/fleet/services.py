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
        # defaults: interval 2, timeout 5, retries 15, start_period 0 (how a rollout uses it: fleet.yaml)
        healthcheck: {command: "bash -c 'echo > /dev/tcp/127.0.0.1/10086'", interval: 2, retries: 10}
        restart: unless-stopped
        stop_order: 50               # lower stops first when a spot host is interrupted
        rollout: {canary: 1, batch: "50%"}   # unset keys come from the fleet's `rollout:`

Checked at load, offline: names, ports, numbers in range, templates (files and `{{ }}` in environment values)
compile, secret keys are identifiers and their sources exist (a file, or `generate:`; an environment variable
that is set), a secret file readable by every user is refused, and a secret cannot be rendered into
`environment`, `command` or `entrypoint` (it would show in `docker inspect` and in argv): the container reads
the mounted file instead (the `*_FILE` convention of Docker's official images).
"""

from __future__ import annotations

import functools
import os
import re
import secrets as secrets_module
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from archfleet.errors import InputError
from archfleet.fleet.registry import check_private_file
from archfleet.fleet.rollout import RolloutSpec, parse_rollout
from archfleet.references import BadReference
from archfleet.references import parse as parse_reference
from archfleet.schema import Mapping, Node

if TYPE_CHECKING:
    from archfleet.fleet import Fleet

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
NETWORK_MODES = ("host", "bridge")
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
GENERATORS = ("uuid", "token")
PORT_PATTERN = re.compile(r"^(?:(?P<host>\d{1,5}):)?(?P<container>\d{1,5})(?:/(?P<proto>tcp|udp))?$")
IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
OWNER_PATTERN = re.compile(r"^(\d{1,10}):(\d{1,10})$")
MODE_PATTERN = re.compile(r"^0?([0-7]{3})$")
SECRET_REFERENCE = re.compile(r"\bsecrets\s*[.\[]")
CONTAINER_PATH_PATTERN = re.compile(r"^/[^\s:,\x00-\x1f]*$")
DEFAULT_SECRET_MODE = "0600"
STOP_ORDER_RANGE = (0, 1000)


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
    owner: str | None = None  # "UID:GID" of the mounted file in the container (default root)
    mode: str = DEFAULT_SECRET_MODE  # octal, 4 digits: "0400"

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
    rollout: RolloutSpec = field(default_factory=RolloutSpec)



SECRETS_INSTEAD = ("a secret cannot be rendered into {where}: it would show in `docker inspect` and in the "
                   "command line. Mount it (secrets: NAME: {{file: ..., mount: /run/secrets/NAME}}) and let the "
                   "container read the file, e.g. NAME_FILE=/run/secrets/NAME in environment (the *_FILE "
                   "convention of Docker's official images)")


def _no_secret(node: Node, text: str, where: str) -> None:
    if SECRET_REFERENCE.search(text):
        node.fail(SECRETS_INSTEAD.format(where=where))


def _command(section: Mapping, key: str) -> list[str] | None:
    node = section.get(key)
    if node is None or node.value is None:
        return None
    if node.is_scalar:
        import shlex

        text = node.as_text() or ""
        _no_secret(node, text, key)
        try:
            return shlex.split(text)
        except ValueError as error:
            node.fail(f"cannot split into arguments: {error}")
    words = section.strings(key)
    for item, word in zip(node.value, words, strict=True):
        _no_secret(item, word, key)
    if key == "entrypoint" and not words:
        node.fail("an entrypoint needs at least the program")
    return words


def _ports(section: Mapping, network: str) -> list[PortSpec]:
    return [_port(item, network) for item in section.sequence("ports")]


def _port(item: Node, network: str) -> PortSpec:
    text = item.as_text() or ""
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
    return PortSpec(host_port, container_port, match["proto"] or "tcp", item)


def _container_path(node: Node, path: str, what: str) -> None:
    if not CONTAINER_PATH_PATTERN.fullmatch(path) or "/../" in f"{path}/" or "/./" in f"{path}/":
        node.fail(f"{what} {path!r} must be an absolute path in the container (no ':', ',', spaces or '..')")


_TEMPLATE_SYNTAX = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


@functools.lru_cache(maxsize=4096)
def _template_syntax_error(text: str) -> str | None:
    try:
        _TEMPLATE_SYNTAX.parse(text)
    except jinja2.TemplateSyntaxError as error:
        return error.message or "template syntax error"
    return None


# `{{ name }}` or `{{ name.attribute... }}`. Jinja parses each `{{ }}` on its own, so a value whose only `{` are in
# such placeholders compiles exactly when each of its placeholders does (services.desired.render_text looks each one
# up instead of compiling the value as a template).
SIMPLE_PLACEHOLDER = re.compile(r"\{\{ *[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)* *\}\}")


@functools.lru_cache(maxsize=1 << 14)  # asked again when the value is rendered for each host
def only_placeholders(text: str) -> bool:
    """The text's only template parts are `{{ name.attribute }}` placeholders, each of which compiles."""
    placeholders = SIMPLE_PLACEHOLDER.findall(text)
    return ("{" not in SIMPLE_PLACEHOLDER.sub("", text)
            and all(_template_syntax_error(placeholder) is None for placeholder in placeholders))


def check_template_text(node: Node, text: str) -> None:
    """A ``{{ }}`` value compiles (rendering against the fleet's variables is checked later, per host)."""
    if "{{" not in text and "{%" not in text and "{#" not in text:
        return
    message = _template_syntax_error(text)
    if message is not None:
        node.fail(f"template syntax error: {message}")


def _check_template_file(node: Node, template: Path) -> None:
    try:
        source = template.read_text()
    except UnicodeDecodeError:
        node.fail(f"template {template} is not UTF-8 text")
    except OSError as error:
        node.fail(f"template {template}: {error.strerror}")
    try:
        _TEMPLATE_SYNTAX.parse(source, template.name, str(template))
    except jinja2.TemplateSyntaxError as error:
        node.fail(f"{template}:{error.lineno}: template syntax error: {error.message}")


def _files(section: Mapping, base_dir: Path) -> list[FileSpec]:
    files = []
    for item in section.sequence("files"):
        entry = Mapping(item)
        template = base_dir / Path(entry.string("template")).expanduser()
        mount = entry.string("mount")
        entry.done()
        if not template.is_file():
            item.fail(f"template {template} does not exist")
        _container_path(entry.items["mount"], mount, "mount")
        _check_template_file(entry.items["template"], template)
        files.append(FileSpec(template, mount, item))
    return files


def _secret_source(entry: Mapping, path: Path | None, env: str | None, generate: str | None) -> None:
    """The secret can be read: its file exists (not readable by every user) or will be generated; its
    environment variable is set."""
    if env is not None:
        if not IDENTIFIER_PATTERN.fullmatch(env):
            entry.fail("env", f"{env!r} is not an environment variable name")
        if env not in os.environ:
            entry.fail("env", f"environment variable {env} is not set")
        return
    assert path is not None
    if not path.exists() and not os.path.islink(path):
        if generate is None:
            entry.fail("file", f"{path} does not exist (add `generate: uuid` or `generate: token` to create it)")
        return
    check_private_file(entry.items["file"], path, "secret file")


def _secrets(section: Mapping | None, base_dir: Path) -> list[SecretSpec]:
    if section is None:
        return []
    result = []
    for name, node in section.entries():
        if not IDENTIFIER_PATTERN.fullmatch(name):
            node.fail("a secret's key is an identifier (letters, digits, '_'; not starting with a digit): "
                      "it names files on the hosts")
        entry = Mapping(node)
        file_value = entry.string("file", None)
        env = entry.string("env", None)
        generate = entry.string("generate", None)
        mount = entry.string("mount", f"/run/secrets/{name}")
        owner = entry.string("owner", None)
        mode_text = entry.string("mode", DEFAULT_SECRET_MODE)
        entry.done()
        if (file_value is None) == (env is None):
            node.fail("a secret comes from exactly one of `file` or `env`")
        if generate is not None and generate not in GENERATORS:
            entry.fail("generate", f"expected one of {', '.join(GENERATORS)}")
        if generate and env:
            entry.fail("generate", "only a secret read from a file can be generated")
        _container_path(entry.items.get("mount", node), mount, "mount")
        if owner is not None and not OWNER_PATTERN.fullmatch(owner):
            entry.fail("owner", f"expected \"UID:GID\" (numbers, e.g. \"1000:1000\"), got {owner!r}")
        mode_match = MODE_PATTERN.fullmatch(mode_text)
        if not mode_match:
            entry.fail("mode", f"expected an octal mode like \"0400\", got {mode_text!r}")
        mode = "0" + mode_match[1]
        if not int(mode, 8) & 0o400:
            entry.fail("mode", f"{mode}: the owner could not read the secret (use 0400 or 0600)")
        if int(mode, 8) & 0o007:
            entry.fail("mode", f"{mode}: every user in the container could use the secret; end the mode in 0 "
                               "and name the `owner` that reads it")
        path = (base_dir / Path(file_value).expanduser()) if file_value else None
        _secret_source(entry, path, env, generate)
        result.append(SecretSpec(name, mount, path, env, generate, node, owner=owner, mode=mode))
    return result


def _healthcheck(section: Mapping | None) -> HealthcheckSpec | None:
    if section is None:
        return None
    command = section.string("command")
    if not command.strip():
        section.fail("command", "a health check needs a command")
    _no_secret(section.items["command"], command, "healthcheck.command")
    spec = HealthcheckSpec(
        command=command,
        interval=section.integer("interval", 2, positive=True),
        retries=section.integer("retries", 15, positive=True),
        start_period=section.integer("start_period", 0, minimum=0),
        timeout=section.integer("timeout", 5, positive=True),
    )
    section.done()
    return spec


def _environment(section: Mapping) -> dict[str, str]:
    """Names that are identifiers, values without secrets whose ``{{ }}`` compile."""
    environment = section.string_map("environment")
    for key, text in environment.items():
        value = section.items["environment"].value[key]
        if not IDENTIFIER_PATTERN.fullmatch(key):
            value.fail("an environment variable's name is letters, digits and '_' (not starting with a digit)")
        _no_secret(value, text, "environment")
        check_template_text(value, text)
    return environment


def _volumes(section: Mapping) -> list[str]:
    """Each volume (a list, or one string) is HOST_PATH:CONTAINER_PATH[:ro|rw]."""
    volumes: list[str] = section.strings("volumes", [])
    if not volumes:
        return volumes
    node = section.items["volumes"]
    for index, volume in enumerate(volumes):
        item = node.value[index] if isinstance(node.value, list) else node
        parts = volume.split(":")
        if len(parts) not in (2, 3) or not parts[0]:
            item.fail(f"{volume!r}: expected HOST_PATH:CONTAINER_PATH[:ro]")
        _container_path(item, parts[1], "volume target")
        if len(parts) == 3 and parts[2] not in ("ro", "rw"):
            item.fail(f"{volume!r}: the third part is ro or rw")
    return volumes


def _image_reference_error(image: str) -> str | None:
    """Why ``image`` is not an image reference as Docker reads it, or None."""
    try:
        parse_reference(image)
    except BadReference as error:
        return str(error)
    return None


def parse_service(name: str, node: Node, fleet: Fleet, base_dir: Path | None = None) -> ServiceSpec:
    """A service read key by key: every key and shape, every error."""
    base_dir = base_dir or fleet.base_dir
    if not NAME_PATTERN.match(name):
        node.fail("a service name is lower-case letters, digits, '.', '_' and '-'")
    section = Mapping(node)
    image = section.string("image")
    if image not in fleet.images and ":" not in image and "@" not in image:
        section.fail("image", f"{image!r} is neither an image declared under `images:` nor a REPO:TAG reference")
    if image not in fleet.images:  # read as Docker reads it: a malformed reference stops here, with its line
        reference_error = _image_reference_error(image)
        if reference_error is not None:
            section.fail("image", reference_error)
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
        environment=_environment(section),
        volumes=_volumes(section),
        files=_files(section, base_dir),
        vars=section.string_map("vars"),
        secrets=_secrets(section.mapping("secrets"), base_dir),
        healthcheck=_healthcheck(section.mapping("healthcheck")),
        restart=restart,
        stop_order=section.integer("stop_order", 50, minimum=STOP_ORDER_RANGE[0], maximum=STOP_ORDER_RANGE[1]),
        node=node,
        rollout=parse_rollout(section.mapping("rollout"), fleet.rollout),
    )
    if not spec.groups and not spec.hosts:
        node.fail("a service needs `groups` or `hosts` to run on")
    mounts = [f.mount for f in spec.files] + [s.mount for s in spec.secrets]
    duplicates = {m for m in mounts if mounts.count(m) > 1}
    if duplicates:
        node.fail(f"two files or secrets mount at {sorted(duplicates)[0]}")
    section.done()
    return spec


def parse_services(section: Mapping | None, fleet: Fleet) -> dict[str, ServiceSpec]:
    if section is None:
        return {}
    base_dir = fleet.base_dir  # the fleet file's folder, resolved once
    return {name: parse_service(name, node, fleet, base_dir) for name, node in section.entries()}
