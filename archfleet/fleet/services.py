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
        secrets:                     # never written in this file; mounted read-only at mount (docs/secrets.md)
          vmess_id: {file: ~/.config/archfleet/v2ray-vmess-id, generate: uuid, mount: /run/secrets/vmess_id}
          api_key: {command: [op, read, "op://infra/api/key"], timeout: 30}   # or ssm: / secretsmanager:
        logging: {driver: json-file, options: {max-size: 10m, max-file: "3"}}   # the default
        # defaults: interval 2, timeout 5, retries 15, start_period 0 (how a rollout uses it: fleet.yaml)
        healthcheck: {command: "bash -c 'echo > /dev/tcp/127.0.0.1/10086'", interval: 2, retries: 10}
        restart: unless-stopped
        stop_order: 50               # lower stops first when a spot host is interrupted
        rollout: {canary: 1, batch: "50%"}   # unset keys come from the fleet's `rollout:`

Checked at load, offline: names, ports, numbers in range, templates (files and `{{ }}` in environment values)
compile, secret keys are identifiers with exactly one source, which exists where it can be told offline (a file,
or `generate:`: then it is "to be generated", never written at load; an environment variable that is set; a
command, SSM or Secrets Manager is read only when a command needs the value), a secret file readable by every
user is refused, and a secret cannot be rendered into `environment`, `command` or `entrypoint` (it would show in
`docker inspect` and in argv): the container reads the mounted file instead (the `*_FILE` convention of Docker's
official images). `logging:` names a driver Docker knows and valid max-size / max-file.
"""

from __future__ import annotations

import functools
import os
import re
import secrets as secrets_module
import shlex
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from archfleet.errors import InputError
from archfleet.fleet import secret_sources
from archfleet.fleet.registry import check_private_file
from archfleet.fleet.rollout import RolloutSpec, parse_rollout
from archfleet.fleet.secret_sources import DEFAULT_COMMAND_TIMEOUT
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
AWS_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-/:+=@]+$")
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


SOURCES = ("file", "env", "command", "ssm", "secretsmanager")  # exactly one per secret
TO_BE_GENERATED = "to be generated"


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
    command: tuple[str, ...] | None = None  # a program whose output is the value (no shell)
    timeout: int = DEFAULT_COMMAND_TIMEOUT  # seconds, for `command`
    ssm: str | None = None  # an SSM parameter's name (decrypted)
    secretsmanager: str | None = None  # a Secrets Manager secret's name or ARN (its SecretString)
    region: str | None = None  # for `ssm` / `secretsmanager`

    @property
    def where(self) -> str:
        """``FILE:LINE: services.S.secrets.NAME``: how errors name the secret."""
        return f"{self.node.where}: {self.node.path}"

    @property
    def source(self) -> str:
        """Where the value comes from, in words (never the value)."""
        if self.env:
            return f"environment variable {self.env}"
        if self.command:
            return f"command {self.command[0]}"
        if self.ssm:
            return f"SSM parameter {self.ssm}"
        if self.secretsmanager:
            return f"Secrets Manager secret {self.secretsmanager}"
        return f"file {self.file}"

    @property
    def read_at_load(self) -> bool:
        """Read when the fleet file is loaded (a file that exists, an environment variable); the others (a
        program, AWS, a file still to be generated) only when a command needs the value."""
        return self.env is not None or (self.file is not None and not self.to_be_generated)

    @property
    def to_be_generated(self) -> bool:
        """A `generate:` secret whose file is missing here: `archfleet sync` generates it when no host holds a
        version of it (archfleet.services.fleet_secrets), else asks for `archfleet secrets pull`."""
        return (self.file is not None and self.generate is not None and not self.file.exists()
                and not self.file.is_symlink())

    def read(self) -> str:
        """The secret's value from its source. Never writes: a missing `generate:` file is an InputError that
        says how to get it (hosts may hold its value)."""
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise InputError(f"{self.where}: environment variable {self.env} is not set")
            return value
        if self.command:
            return secret_sources.from_command(list(self.command), self.timeout, self.where)
        if self.ssm:
            return secret_sources.from_ssm(self.ssm, self.region, self.where)
        if self.secretsmanager:
            return secret_sources.from_secretsmanager(self.secretsmanager, self.region, self.where)
        assert self.file is not None
        if self.to_be_generated:
            raise InputError(f"{self.where}: {self.file} does not exist here ({TO_BE_GENERATED}): if hosts run "
                             f"it, `archfleet secrets pull {self.name}` copies their value into it; else "
                             f"`archfleet sync` generates it")
        try:
            return self.file.read_text().strip()
        except OSError as error:
            raise InputError(f"{self.where}: cannot read {self.file}: {error.strerror}") from None

    def new_value(self) -> str:
        """A freshly generated value (`generate: uuid` or `token`); nothing is written."""
        return str(uuid.uuid4()) if self.generate == "uuid" else secrets_module.token_urlsafe(24)

    def write_file(self, value: str, replace: bool = False) -> None:
        """Write ``value`` to the secret's file, 0600 (its folder 0700 if new): written aside and moved into
        place, refusing an existing file unless ``replace``."""
        assert self.file is not None
        self.file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        aside = self.file.with_name(f".{self.file.name}.{os.getpid()}.new")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(value + "\n")
            if replace:
                os.replace(aside, self.file)
            else:
                os.link(aside, self.file)  # FileExistsError: another process wrote it meanwhile
        finally:
            if aside.exists():
                aside.unlink()


# Docker's logging drivers (`docker create --log-driver`). Every container logs with DEFAULT_LOG_OPTIONS unless its
# service names its own `logging:`: json-file without a bound fills a host's disk.
LOG_DRIVERS = ("json-file", "local", "journald", "syslog", "gelf", "fluentd", "awslogs", "splunk", "gcplogs",
               "logentries", "etwlogs", "none")
DEFAULT_LOG_DRIVER = "json-file"
DEFAULT_LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}
BOUNDED_LOG_DRIVERS = ("json-file", "local")  # the drivers whose files live on the host: max-size, max-file
LOG_SIZE_PATTERN = re.compile(r"^[1-9][0-9]*[kmg]?$")
LOG_OPTION_PATTERN = re.compile(r"^[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*$")


@dataclass(frozen=True)
class LoggingSpec:
    """How a service's containers log: Docker's driver and its options (`--log-driver`, `--log-opt`)."""

    driver: str = DEFAULT_LOG_DRIVER
    options: tuple[tuple[str, str], ...] = tuple(sorted(DEFAULT_LOG_OPTIONS.items()))


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
    logging: LoggingSpec = field(default_factory=LoggingSpec)



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


def _secret_file(entry: Mapping, path: Path, generate: str | None) -> None:
    """The secret's file exists (not readable by every user) or will be generated."""
    if not path.exists() and not os.path.islink(path):
        if generate is None:
            entry.fail("file", f"{path} does not exist (add `generate: uuid` or `generate: token` to create it)")
        return
    check_private_file(entry.items["file"], path, "secret file")


def _secret_env(entry: Mapping, env: str) -> None:
    if not IDENTIFIER_PATTERN.fullmatch(env):
        entry.fail("env", f"{env!r} is not an environment variable name")
    if env not in os.environ:
        entry.fail("env", f"environment variable {env} is not set")


def _secret_command(entry: Mapping) -> tuple[str, ...]:
    """`command:` as an argv: a list, or a string split as a shell would (it never runs through one)."""
    node = entry.items["command"]
    if node.is_scalar:
        text = node.as_text() or ""
        try:
            argv = shlex.split(text)
        except ValueError as error:
            node.fail(f"cannot split into arguments: {error}")
    else:
        argv = entry.strings("command")
    if not argv or not argv[0]:
        node.fail("a secret's command needs at least the program (e.g. [op, read, \"op://vault/item/field\"])")
    return tuple(argv)


def _secret_sources(entry: Mapping, node: Node) -> list[str]:
    """The source keys the secret names: exactly one, else an error at the second (or at the secret)."""
    named = [key for key in SOURCES if entry.get(key) is not None]
    if not named:
        node.fail(f"a secret needs a source: one of {', '.join(SOURCES)}")
    if len(named) > 1:
        node.fail(f"a secret comes from exactly one of {', '.join(SOURCES)}; this one names "
                  f"{' and '.join(named)}")
    return named


def _only_with(entry: Mapping, key: str, sources: tuple[str, ...], source: str) -> None:
    if entry.items.get(key) is not None and source not in sources:
        entry.fail(key, f"only a secret from {' or '.join(sources)} takes `{key}` (this one is from `{source}`)")


def _secrets(section: Mapping | None, base_dir: Path) -> list[SecretSpec]:
    if section is None:
        return []
    result = []
    for name, node in section.entries():
        if not IDENTIFIER_PATTERN.fullmatch(name):
            node.fail("a secret's key is an identifier (letters, digits, '_'; not starting with a digit): "
                      "it names files on the hosts")
        entry = Mapping(node)
        source = _secret_sources(entry, node)[0]
        file_value = entry.string("file", None)
        env = entry.string("env", None)
        command = _secret_command(entry) if source == "command" else None
        ssm = entry.string("ssm", None)
        secretsmanager = entry.string("secretsmanager", None)
        generate = entry.string("generate", None)
        timeout = entry.integer("timeout", DEFAULT_COMMAND_TIMEOUT, positive=True, maximum=3600)
        region = entry.string("region", None)
        mount = entry.string("mount", f"/run/secrets/{name}")
        owner = entry.string("owner", None)
        mode_text = entry.string("mode", DEFAULT_SECRET_MODE)
        entry.done()
        if generate is not None and generate not in GENERATORS:
            entry.fail("generate", f"expected one of {', '.join(GENERATORS)}")
        _only_with(entry, "generate", ("file",), source)
        _only_with(entry, "timeout", ("command",), source)
        _only_with(entry, "region", ("ssm", "secretsmanager"), source)
        for key, text in (("ssm", ssm), ("secretsmanager", secretsmanager), ("region", region)):
            if text is not None and not AWS_NAME_PATTERN.fullmatch(text):
                entry.fail(key, f"{text!r} is not an AWS name (letters, digits and _.-/:+=@ only)")
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
        if path is not None:
            _secret_file(entry, path, generate)
        if env is not None:
            _secret_env(entry, env)
        result.append(SecretSpec(name, mount, path, env, generate, node, owner=owner, mode=mode, command=command,
                                 timeout=timeout, ssm=ssm, secretsmanager=secretsmanager, region=region))
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


def _logging(section: Mapping | None) -> LoggingSpec:
    """`logging: {driver: json-file, options: {max-size: 50m}}`. With json-file or local, the default bound
    (DEFAULT_LOG_OPTIONS) fills in max-size and max-file the service does not name; another driver takes only the
    options written."""
    if section is None:
        return LoggingSpec()
    driver = section.string("driver", DEFAULT_LOG_DRIVER)
    if driver not in LOG_DRIVERS:
        section.fail("driver", f"expected one of {', '.join(LOG_DRIVERS)}, got {driver!r}")
    options = section.string_map("options")
    section.done()
    for key, value in options.items():
        node = section.items["options"].value[key]
        if not LOG_OPTION_PATTERN.fullmatch(key):
            node.fail(f"{key!r} is not a log option name (lower-case letters, digits, '-' and '.')")
        _no_secret(node, value, "logging.options")
        if not value or any(ord(char) < 32 for char in value):
            node.fail("a log option's value is one line of text")
        if key == "max-size" and not LOG_SIZE_PATTERN.fullmatch(value):
            node.fail(f"expected a size like 10m, 500k or 1g, got {value!r}")
        if key == "max-file" and not (value.isdigit() and 1 <= int(value) <= 1000):
            node.fail(f"expected a number of files from 1 to 1000, got {value!r}")
    if driver == "none" and options:
        section.fail("options", "the `none` driver takes no options")
    if driver not in BOUNDED_LOG_DRIVERS and ("max-size" in options or "max-file" in options):
        key = "max-size" if "max-size" in options else "max-file"
        section.items["options"].value[key].fail(f"{key} is an option of the json-file and local drivers only")
    if driver in BOUNDED_LOG_DRIVERS:
        options = {**DEFAULT_LOG_OPTIONS, **options}
    return LoggingSpec(driver, tuple(sorted(options.items())))


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
        logging=_logging(section.mapping("logging")),
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
