"""The container a host should run for a service: pure, computed from the spec, the host and the registry.

Rendered files and secrets are versioned on the host (``/etc/archfleet/services/<service>/<version>/<name>``), so a
new version never overwrites what the running container mounts: a failed rollout can put the previous container
back with its own files. A version is a keyed hash of the content (HMAC-SHA256 under the fleet's secret version key,
``archfleet.credentials.secret_version_key``): stable from sync to sync, and no test of a guessed secret for
whoever reads it in argv, ``docker inspect``, user-data or an SSM parameter's name.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import posixpath
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import jinja2

from archfleet.credentials import secret_version_key
from archfleet.errors import InputError
from archfleet.facts.service_reads import FILES_ROOT, ContainerState
from archfleet.fleet.services import SIMPLE_PLACEHOLDER, HealthcheckSpec, only_placeholders
from archfleet.inventory_file import host_addresses
from archfleet.placement import container_name, previous_container_name

if TYPE_CHECKING:
    from archfleet.fleet import Fleet
    from archfleet.fleet.services import ServiceSpec


@dataclass(frozen=True)
class ManagedFile:
    """A file archfleet puts on the host and mounts read-only into the container. Its directory is named after
    its version (file_version: keyed by the fleet, of its content, owner and mode), so a new version never
    overwrites what a running container mounts."""

    host_path: str
    mount: str
    content: bytes = field(repr=False)
    sha256: str  # of the content (compared with the host's copy; never in a name, an argv or a label)
    secret: bool
    owner: str = "0:0"  # UID:GID
    mode: str = "0600"


@dataclass(frozen=True)
class DesiredContainer:
    service: str
    name: str
    tag: str  # the multi-arch tag the service declares
    digest: str  # this host's platform's image manifest digest
    image: str  # REPO@DIGEST: what the host pulls and runs
    create_args: list[str]  # everything `docker create` needs after the name and labels, before the image
    command: list[str]
    files: list[ManagedFile]
    spec_hash: str
    healthcheck: HealthcheckSpec | None  # the declared check (a rollout runs it itself too: tasks/service_commands)
    wait_seconds: int  # how long a rollout waits for the container to become healthy
    stop_order: int

    @property
    def previous_name(self) -> str:
        return previous_container_name(self.service)


class SecretValues:
    """Each service's secret values, read once per run: at load those read at load (a file, an environment
    variable); the others (a program, AWS) on the first demand, when a command needs them to render a container.
    A `generate:` secret still to be generated is given by archfleet.services.fleet_secrets (a sync, after it
    read the hosts) or is an error that says how to get it (SecretSpec.read)."""

    def __init__(self, services: dict[str, ServiceSpec]):
        self.services = services
        self.values: dict[tuple[str, str], str] = {}  # (service, secret) -> value
        for spec in services.values():
            for secret in spec.secrets:
                if secret.read_at_load:
                    self.values[(spec.name, secret.name)] = secret.read()

    def get(self, service: str) -> dict[str, str]:
        """Every secret of ``service`` by name, read now where it was not yet ({} for a service not declared)."""
        spec = self.services.get(service)
        if spec is None:
            return {}
        for secret in spec.secrets:
            if (service, secret.name) not in self.values:
                self.values[(service, secret.name)] = secret.read()
        return {secret.name: self.values[(service, secret.name)] for secret in spec.secrets}

    def at_load(self, service: str) -> dict[str, str]:
        """What a template sees at load: the values read at load, a stand-in for the others (nothing is run)."""
        spec = self.services.get(service)
        if spec is None:
            return {}
        return {secret.name: self.values.get((service, secret.name), f"(secret {secret.name}: {secret.source})")
                for secret in spec.secrets}

    def provide(self, service: str, name: str, value: str) -> None:
        """A value found by the sync (a generated one), or given by a test."""
        self.values[(service, name)] = value


@dataclass(frozen=True)
class FleetContext:
    """What every host's containers are rendered from, worked out once per fleet file: template variables about
    the whole fleet and each service's secret values (SecretValues)."""

    hosts: dict[str, dict[str, str]]  # host -> {"address": ...}
    service_hosts: dict[str, list[str]]  # service -> host names
    secrets: SecretValues = field(repr=False)
    version_key: bytes = field(repr=False)  # the fleet's secret version key (file_version); b"": not read yet

    def variables(self) -> dict[str, object]:
        return {"hosts": self.hosts, "service_hosts": self.service_hosts}


def needs_version_key(fleet: Fleet) -> bool:
    """Whether the fleet puts files on hosts (secrets or templates), which are named with the version key."""
    return any(spec.secrets or spec.files for spec in fleet.services.values())


def load_context(fleet: Fleet) -> FleetContext:
    """The context as the load makes it: nothing written, nothing run (no version key yet, the secrets that are
    not read at load left for later)."""
    if fleet.context is None:
        placement = fleet.placement
        fleet.context = FleetContext(
            hosts={name: {"address": address} for name, address in host_addresses(fleet.hosts).items()}
            if fleet.hosts is not None else {},
            service_hosts=placement.service_hosts() if placement else {},
            secrets=SecretValues(fleet.services),
            version_key=b"",
        )
    return fleet.context  # type: ignore[no-any-return]


def fleet_context(fleet: Fleet) -> FleetContext:
    """The fleet's context for rendering containers: the load's, with the fleet's secret version key (read, or
    generated when there is none: archfleet.credentials.secret_version_key; a sync decides first, in
    archfleet.services.fleet_secrets)."""
    context = load_context(fleet)
    if not context.version_key and needs_version_key(fleet):
        context = fleet.context = replace(context, version_key=secret_version_key())
    return context


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_version(key: bytes, service: str, basename: str, content: bytes, owner: str, mode: str) -> str:
    """The name of a file's version folder: HMAC-SHA256 under the fleet's key of where it goes (service, file
    name, owner, mode) and its content, 16 hex digits. The same inputs give the same name at every sync; without
    the key, the name says nothing about the content (not even that two services hold the same value)."""
    if not key:
        raise ValueError("a file version needs the fleet's secret version key")
    where = json.dumps([service, basename, owner, mode]).encode()
    return hmac.new(key, where + b"\0" + content, hashlib.sha256).hexdigest()[:16]


def managed_file(service: str, basename: str, mount: str, content: bytes, secret: bool, key: bytes,
                 owner: str = "0:0", mode: str = "0600") -> ManagedFile:
    version = file_version(key, service, basename, content, owner, mode)
    return ManagedFile(
        host_path=f"{FILES_ROOT}/{service}/{version}/{basename}",
        mount=mount,
        content=content,
        sha256=sha256_hex(content),
        secret=secret,
        owner=owner,
        mode=mode,
    )


# What rendering can raise besides Jinja2's own errors (`| tojson` of an undefined value raises TypeError).
RENDER_ERRORS = (jinja2.TemplateError, TypeError, ValueError, LookupError, ArithmeticError)


@functools.cache
def template_environment(folder: str) -> jinja2.Environment:
    """One Jinja2 environment per template folder: each template is compiled once per run, however many hosts."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        autoescape=False,
    )


@functools.cache
def text_template(text: str) -> jinja2.Template:
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text)


_PLACEHOLDER_ENVIRONMENT = jinja2.Environment(undefined=jinja2.StrictUndefined)


def placeholder_value(placeholder: str, variables: dict[str, object]) -> str:
    """What ``{{ name.attribute... }}`` renders to, looked up as Jinja's compiled code does (the name among the
    variables, each attribute with Environment.getattr, then str); anything undefined is left to Jinja itself,
    which renders it (or raises the error it raises)."""
    name, *attributes = placeholder.strip("{} ").split(".")
    value = variables[name] if name in variables else _PLACEHOLDER_ENVIRONMENT.undefined(name=name)
    for attribute in attributes:
        if isinstance(value, jinja2.Undefined):
            break
        value = _PLACEHOLDER_ENVIRONMENT.getattr(value, attribute)
    if isinstance(value, jinja2.Undefined):
        return text_template(placeholder).render(**variables)
    return str(value)


def render_template(spec: ServiceSpec, index: int, variables: dict[str, object]) -> bytes:
    file_spec = spec.files[index]
    try:
        template = template_environment(str(file_spec.template.parent)).get_template(file_spec.template.name)
        return template.render(**variables).encode()
    except RENDER_ERRORS as error:  # a template is user code: any failure is bad input naming it
        line = getattr(error, "lineno", None)
        where = f"{file_spec.template}:{line}" if line else str(file_spec.template)
        raise InputError(f"{where}: cannot render for service {spec.name!r}: {error}") from None


def render_text(spec: ServiceSpec, where: str, text: str, variables: dict[str, object]) -> str:
    """Environment values may use the template variables too (``{{ hosts['amd64-1'].address }}``), but never
    ``secrets``: a secret reaches a container only as a mounted file."""
    if "{{" not in text and "{%" not in text:
        return text
    try:
        if "\n" not in text and "\r" not in text and only_placeholders(text):
            # Each `{{ name.attribute }}` looked up on its own, not a template compiled per value (Jinja's output is
            # the text around them and each one's value; a line break it would normalize).
            return SIMPLE_PLACEHOLDER.sub(lambda placeholder: placeholder_value(placeholder[0], variables), text)
        return text_template(text).render(**variables)
    except RENDER_ERRORS as error:  # a template is user code: any failure is bad input naming it
        raise InputError(f"{spec.node.where}: services.{spec.name}.{where}: {error}") from None


def template_variables(spec: ServiceSpec, host_name: str, platform: str, context: FleetContext) -> dict[str, object]:
    """What a service's templates and environment values see on one host (``secrets`` aside: templates only)."""
    return {
        **context.variables(),
        "vars": spec.vars,
        **spec.vars,
        "host": {"name": host_name, "platform": platform},
        "service": {"name": spec.name},
    }


def desired_container(
    spec: ServiceSpec,
    *,
    tag: str,
    repository: str,
    digest: str,
    host_name: str,
    platform: str,
    context: FleetContext,
) -> DesiredContainer:
    """The container ``host_name`` (of ``platform``) runs for ``spec``, from the image ``repository@digest``."""
    secret_values = context.secrets.get(spec.name)
    files: list[ManagedFile] = []
    for secret in spec.secrets:
        files.append(managed_file(
            spec.name, secret.name, secret.mount, secret_values[secret.name].encode(), True, context.version_key,
            owner=getattr(secret, "owner", None) or "0:0", mode=getattr(secret, "mode", None) or "0600",
        ))
    plain = template_variables(spec, host_name, platform, context)
    for index, file_spec in enumerate(spec.files):
        content = render_template(spec, index, {**plain, "secrets": secret_values})
        files.append(managed_file(spec.name, posixpath.basename(file_spec.mount), file_spec.mount, content, False,
                                  context.version_key))

    args = ["--network", spec.network, "--restart", spec.restart, "--log-driver", spec.logging.driver]
    for key, value in spec.logging.options:
        args += ["--log-opt", f"{key}={value}"]
    if spec.network == "bridge":
        for port in spec.ports:
            args += ["--publish", f"{port.host_port}:{port.container_port}/{port.protocol}"]
    for key, value in sorted(spec.environment.items()):
        args += ["--env", f"{key}={render_text(spec, f'environment.{key}', value, plain)}"]
    for volume in spec.volumes:
        args += ["--volume", volume]
    for managed in files:
        args += ["--volume", f"{managed.host_path}:{managed.mount}:ro"]
    if spec.entrypoint is not None:
        args += ["--entrypoint", spec.entrypoint[0]]
    if spec.healthcheck:
        check = spec.healthcheck
        args += [
            "--health-cmd", check.command,
            "--health-interval", f"{check.interval}s",
            "--health-retries", str(check.retries),
            "--health-timeout", f"{check.timeout}s",
            "--health-start-period", f"{check.start_period}s",
        ]
    command = (spec.entrypoint[1:] if spec.entrypoint else []) + (spec.command or [])
    spec_hash = sha256_hex(
        json.dumps({"args": args, "command": command, "files": [f.host_path for f in files]}, sort_keys=True).encode()
    )[:16]
    return DesiredContainer(
        service=spec.name,
        name=container_name(spec.name),
        tag=tag,
        digest=digest,
        image=f"{repository}@{digest}",
        create_args=args,
        command=command,
        files=files,
        spec_hash=spec_hash,
        healthcheck=spec.healthcheck,
        wait_seconds=wait_seconds(spec),
        stop_order=spec.stop_order,
    )


RENDER_CHECK_PLATFORM = "unknown/unknown"  # a host's platform is not known before it is contacted


def check_renders(fleet: Fleet) -> None:
    """At load time: every service renders (templates, environment values) for each host it is placed on, with
    undefined names refused. The host's platform is not known before it is contacted: it renders as
    ``unknown/unknown`` here."""
    context = load_context(fleet)
    placement = fleet.placement
    if placement is None:
        return
    # What desired_container renders, in its order (each file, then each environment value by name), without the
    # rest of the container: the same first error. A value without `{{`/`{%` is not a template (render_text).
    templated: dict[str, list[tuple[str, str]]] = {}
    for host in placement.hosts:
        for spec in placement.services_on(host):
            values = templated.get(spec.name)
            if values is None:
                values = templated[spec.name] = [(key, value) for key, value in sorted(spec.environment.items())
                                                 if "{{" in value or "{%" in value]
            if not values and not spec.files:
                continue
            plain = template_variables(spec, host, RENDER_CHECK_PLATFORM, context)
            if spec.files:
                with_secrets = {**plain, "secrets": context.secrets.at_load(spec.name)}
                for index in range(len(spec.files)):
                    render_template(spec, index, with_secrets)
            for key, value in values:
                render_text(spec, f"environment.{key}", value, plain)


def wait_seconds(spec: ServiceSpec) -> int:
    check = spec.healthcheck
    if check is None:
        return 15
    return check.start_period + (check.interval + check.timeout) * (check.retries + 1) + 5


@dataclass(frozen=True)
class Decision:
    action: str  # "create", "recreate", "start" or "none"
    reason: str


def decide(desired: DesiredContainer, current: ContainerState | None) -> Decision:
    """Create when missing; recreate when the spec or the image digest changed; start when stopped."""
    if current is None:
        return Decision("create", f"no container {desired.name}")
    changes = []
    if current.get("spec") != desired.spec_hash:
        changes.append(f"spec {current.get('spec') or '-'} -> {desired.spec_hash}")
    if current.get("digest") != desired.digest:
        changes.append(f"image digest {short(current.get('digest'))} -> {short(desired.digest)}")
    if changes:
        return Decision("recreate", "; ".join(changes))
    if current.get("status") != "running":
        return Decision("start", f"container is {current.get('status')}")
    return Decision("none", f"{desired.name} runs {short(desired.digest)} with spec {desired.spec_hash}")


def short(digest: str | None) -> str:
    if not digest:
        return "-"
    return digest.split(":", 1)[-1][:12]
