"""Secrets that belong to the fleet, not to one controller: a `generate:` secret whose file is missing here is never
generated while a host holds a version of it.

The load never writes: such a secret is *to be generated* (SecretSpec.to_be_generated). ``archfleet sync`` decides
after its one read of the hosts and before it plans (``settle_fleet_secrets``), from the managed files that read
lists (``/etc/archfleet/services/<service>/<version>/<name>``: no command of its own):

- a host holds a version of it: exit 2 naming the secret, the hosts and the way out (``archfleet secrets pull``);
  nothing is written here or changed on any host;
- a host of one of its services is left out by ``--limit``, or could not be read: nothing is generated (exit 2 / 1);
- every host of its services was read and none holds it: a new value, in memory until the hosts to change are
  locked and read again (``GeneratedSecrets.write``): still held by none, it is written here 0600 before the first
  change; a host that took a version meanwhile (another controller's run) refuses the run with nothing written or
  changed. ``--dry`` says it would, and writes nothing.

The fleet's secret version key (archfleet.credentials.secret_version_key) is decided the same way: missing here
while hosts hold files named with it, it is never made anew (every file would get a new name, and every container
that mounts one would be recreated); a new controller copies it.

Secrets that several services read from one file are one fleet secret: generated once, held by any of them.
``archfleet secrets pull`` (archfleet.commands.secrets) uses ``pull_members``, ``pull_targets``, ``parse_pulled`` and
``agreed_value`` below.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from archfleet.credentials import (
    SECRET_VERSION_KEY_BYTES,
    SECRET_VERSION_KEY_ENV,
    secret_version_key_path,
    write_secret_version_key,
)
from archfleet.errors import InputError, OperationFailed
from archfleet.facts.service_reads import FILES_ROOT, ServicesStateValue
from archfleet.placement import container_name
from archfleet.services.desired import fleet_context, load_context, needs_version_key

if TYPE_CHECKING:
    from archfleet.fleet import Fleet
    from archfleet.fleet.services import SecretSpec

Say = Callable[[str], None]
VERSION = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class FleetSecret:
    """One secret file of the fleet and every (service, secret) that reads it."""

    file: Path
    members: tuple[tuple[str, SecretSpec], ...]

    @property
    def name(self) -> str:
        return self.members[0][1].name

    @property
    def services(self) -> list[str]:
        return sorted({service for service, _ in self.members})

    @property
    def label(self) -> str:
        services = self.services
        return f"{self.name} ({'services' if len(services) > 1 else 'service'} {', '.join(services)})"

    def held_on(self, state: ServicesStateValue) -> list[str]:
        """The versions of this secret a host holds (paths of its managed files)."""
        wanted = {(service, secret.name) for service, secret in self.members}
        held = []
        for path in state.get("files") or {}:
            parts = path[len(FILES_ROOT) + 1:].split("/") if path.startswith(FILES_ROOT + "/") else []
            if len(parts) == 3 and VERSION.fullmatch(parts[1]) and (parts[0], parts[2]) in wanted:
                held.append(path)
        return sorted(held)


def fleet_secrets(fleet: Fleet, only: Callable[[SecretSpec], bool] = lambda secret: True) -> list[FleetSecret]:
    """The fleet's secrets read from a file, one per file, in the order services declare them."""
    grouped: dict[Path, list[tuple[str, SecretSpec]]] = {}
    for spec in fleet.services.values():
        for secret in spec.secrets:
            if secret.file is not None and only(secret):
                grouped.setdefault(secret.file, []).append((spec.name, secret))
    return [FleetSecret(file, tuple(members)) for file, members in grouped.items()]


def pull_hint(fleet: Fleet, secret: FleetSecret) -> str:
    """``archfleet secrets pull NAME`` (with ``--service`` when NAME names other files too, ``-f`` the fleet)."""
    others = [s for s in fleet_secrets(fleet) if s.name == secret.name and s.file != secret.file]
    service = f" --service {secret.services[0]}" if others else ""
    return f"`archfleet secrets pull {secret.name}{service} -f {fleet.path}`"


@dataclass
class GeneratedSecrets:
    """The secrets a sync generated, in memory until its hosts are locked: ``write`` checks the hosts' states read
    under the lock (none may hold a version now) and only then writes each file here (0600)."""

    pending: list[tuple[FleetSecret, str]]
    say: Say
    version_key: bytes | None = None  # the fleet's secret version key, when this run made it
    key_roots: tuple[str, ...] = ()  # the folders of the files named with it

    def write(self, states: dict[str, ServicesStateValue]) -> None:
        """Raises InputError (a host took a version, or files named with another key, since the first read) or
        OperationFailed (the file was written here meanwhile), each with nothing written."""
        if self.version_key is not None:
            holders = [host for host in sorted(states)
                       if any(path.startswith(self.key_roots) for path in states[host].get("files") or {})]
            if holders:
                raise InputError(f"the fleet's secret version key: {', '.join(holders)} took files named with "
                                 "another one since the first read (another controller's run made it): copy that "
                                 "key here, then sync again; nothing was written or changed")
        for secret, _ in self.pending:
            holders = [host for host in sorted(states) if secret.held_on(states[host])]
            if holders:
                raise InputError(
                    f"secret {secret.label}: {', '.join(holders)} took a version of it since the first read "
                    f"(another run generated it): {secret.file} was not written; sync again to use the hosts' "
                    f"value after copying it here: `archfleet secrets pull {secret.name}`; nothing was changed")
        for secret, value in self.pending:
            try:
                secret.members[0][1].write_file(value)
            except FileExistsError:
                raise OperationFailed(f"secret {secret.label}: {secret.file} was written here meanwhile (another "
                                      "run?): sync again to use it; nothing was changed") from None
            self.say(f"sync: secret {secret.label}: generated a new value into {secret.file} (0600; no host of "
                     f"{', '.join(secret.services)} held one)")
        self.pending = []
        if self.version_key is not None:
            key, self.version_key = self.version_key, None
            if not write_secret_version_key(key):
                raise OperationFailed(f"the fleet's secret version key {secret_version_key_path()} was written here "
                                      "meanwhile (another run?): sync again to use it; nothing was changed")


def settle_fleet_secrets(fleet: Fleet, in_scope: list[str], states: dict[str, ServicesStateValue], *, dry: bool,
                         say: Say) -> GeneratedSecrets:
    """Before a sync plans: every secret still to be generated is refused (a host holds it, or not every host of
    its services was read) or generated in memory (written by the result's ``write`` under the lock; ``dry``:
    never); then the version key, the same way. Raises InputError / OperationFailed with nothing written and
    nothing changed."""
    generated = GeneratedSecrets([], say)
    placement = fleet.placement
    if placement is None:
        return generated
    scope = set(in_scope)
    context = load_context(fleet)
    for secret in fleet_secrets(fleet, lambda spec: spec.to_be_generated):
        placed = sorted({host for service in secret.services for host in placement.hosts_of(service)})
        if not scope.intersection(placed):
            continue  # no host of this sync renders it
        holders = [host for host in sorted(states) if secret.held_on(states[host])]
        if holders:
            raise InputError(
                f"secret {secret.label}: {secret.file} does not exist here, but {', '.join(holders)} "
                f"hold{'s' if len(holders) == 1 else ''} a version of it: {pull_hint(fleet, secret)} copies it "
                "from a host into that file (a new value would replace it on every host); nothing was changed")
        _every_host_read(f"secret {secret.label}: {secret.file} does not exist here", placed, scope, states,
                         "generate it")
        value = secret.members[0][1].new_value()
        if dry:
            say(f"sync: secret {secret.label}: would generate a new value into {secret.file} (no host of "
                f"{', '.join(secret.services)} holds one)")
        else:
            generated.pending.append((secret, value))
        for service, spec in secret.members:
            context.secrets.provide(service, spec.name, value)
    settle_version_key(fleet, in_scope, states, dry=dry, say=say, generated=generated)
    return generated


def settle_version_key(fleet: Fleet, in_scope: list[str], states: dict[str, ServicesStateValue], *, dry: bool,
                       say: Say, generated: GeneratedSecrets | None = None) -> None:
    """The fleet's secret version key: read when its file is here; else refused when a host holds files named with
    it (or a host that may was not read), else generated in memory (written by ``generated.write`` under the
    lock; ``dry``: never; without ``generated``: written now)."""
    context = load_context(fleet)
    if context.version_key or not needs_version_key(fleet) or fleet.placement is None:
        return
    path = secret_version_key_path()
    if path.exists() or path.is_symlink():
        fleet_context(fleet)  # read and checked
        return
    services = sorted(spec.name for spec in fleet.services.values() if spec.secrets or spec.files)
    roots = tuple(f"{FILES_ROOT}/{service}/" for service in services)
    holders = [host for host in sorted(states) if any(p.startswith(roots) for p in states[host].get("files") or {})]
    where = f"the fleet's secret version key {path} does not exist here"
    if holders:
        raise InputError(
            f"{where}, but {', '.join(holders)} hold files named with it: copy it (0600) from another controller "
            f"of this fleet, or name it with {SECRET_VERSION_KEY_ENV} (a new key would rename every file and "
            "recreate every container that mounts one); nothing was changed")
    placed = sorted({host for service in services for host in fleet.placement.hosts_of(service)})
    _every_host_read(where, placed, set(in_scope), states, "generate it")
    if dry or generated is not None:
        key = secrets.token_bytes(SECRET_VERSION_KEY_BYTES)
        if dry:
            say(f"sync: would generate the secret version key {path} (no host holds a file named with one)")
        elif generated is not None:
            generated.version_key, generated.key_roots = key, roots
        fleet.context = replace(context, version_key=key)
        return
    fleet_context(fleet)  # generates it, and says so


def _every_host_read(what: str, placed: list[str], scope: set[str], states: dict[str, ServicesStateValue],
                     action: str) -> None:
    left_out = [host for host in placed if host not in scope]
    if left_out:
        raise InputError(f"{what}, and --limit leaves out {', '.join(left_out)}, which may hold a version of it: "
                         f"sync without --limit to {action} (or pull it from a host); nothing was changed")
    unread = [host for host in placed if host not in states]
    if unread:
        raise OperationFailed(f"{what}, and {', '.join(unread)} could not be read, which may hold a version of "
                              f"it: nothing is generated until every host is read; nothing was changed")


# --- archfleet secrets pull --------------------------------------------------------------------------------------

def pull_members(fleet: Fleet, name: str, service: str | None) -> FleetSecret:
    """The one secret file ``name`` (of ``service``) is read from; InputError when there is none or several."""
    declared = [(spec.name, secret) for spec in fleet.services.values() for secret in spec.secrets
                if secret.name == name and service in (None, spec.name)]
    if service is not None and service not in fleet.services:
        raise InputError(f"{fleet.path}: secrets pull: no service named {service!r} "
                         f"(services: {', '.join(fleet.services) or 'none'})")
    if not declared:
        known = sorted({secret.name for spec in fleet.services.values() for secret in spec.secrets
                        if service in (None, spec.name)})
        raise InputError(f"{fleet.path}: secrets pull: no secret named {name!r}"
                         f"{f' in service {service}' if service else ''} (secrets: {', '.join(known) or 'none'})")
    not_files = [(svc, secret) for svc, secret in declared if secret.file is None]
    if not_files:
        svc, secret = not_files[0]
        raise InputError(f"{secret.where}: secrets pull: {name} of {svc} comes from {secret.source}, not a file: "
                         "there is nothing to write here")
    grouped = fleet_secrets(fleet, lambda secret: secret.name == name)
    grouped = [g for g in grouped if any(service in (None, svc) for svc, _ in g.members)]
    if len(grouped) > 1:
        choices = "; ".join(f"{', '.join(g.services)}: {g.file}" for g in grouped)
        raise InputError(f"{fleet.path}: secrets pull: {name} is read from different files by different services "
                         f"({choices}): name one with --service")
    return grouped[0]


def pull_targets(fleet: Fleet, secret: FleetSecret) -> list[tuple[str, str, str, str]]:
    """(container, mount, service, secret name) for each member: what a host's read looks for."""
    return [(container_name(service), spec.mount, service, spec.name) for service, spec in secret.members]


def parse_pulled(lines: list[str]) -> tuple[dict[tuple[str, str], tuple[str, bytes]], list[str]]:
    """A host's answer to tasks/secret_commands.read_secrets: (service, name) -> (path, value), and the reasons of
    what was not found."""
    found: dict[tuple[str, str], tuple[str, bytes]] = {}
    missing: list[str] = []
    for line in lines:
        if not line.startswith("secret="):
            continue
        words = line[len("secret="):].split(" ", 4)
        if len(words) < 4:
            continue
        service, name, how = words[0], words[1], words[2]
        if how == "none":
            missing.append(f"{service}: {' '.join(words[3:])}")
            continue
        if len(words) < 5:
            missing.append(f"{service}: {words[3]} is empty")
            continue
        try:
            found[(service, name)] = (words[3], base64.b64decode(words[4], validate=True))
        except (binascii.Error, ValueError):
            missing.append(f"{service}: the value read from {words[3]} is not base64")
    return found, missing


def agreed_value(values: dict[str, str], chosen: str | None, name: str) -> tuple[str, str]:
    """(the host it is taken from, the value) among the hosts' values (host -> value): ``chosen`` (``--from``),
    else the one value every host holds; hosts that disagree are an InputError naming them (never a value)."""
    if chosen is not None:
        if chosen not in values:
            raise InputError(f"secrets pull: --from {chosen}: no value of {name} was read there "
                             f"(read from: {', '.join(sorted(values)) or 'no host'})")
        return chosen, values[chosen]
    groups: dict[str, list[str]] = {}
    for host, value in sorted(values.items()):
        groups.setdefault(value, []).append(host)
    if len(groups) > 1:
        described = "; ".join(f"one held by {', '.join(hosts)}" for hosts in groups.values())
        raise InputError(f"secrets pull: the hosts hold {len(groups)} different values of {name} ({described}): "
                         "take one with --from HOST (the next sync puts it on every host)")
    host = sorted(values)[0]
    return host, values[host]
