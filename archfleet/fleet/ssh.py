"""The ``ssh:`` section of the fleet file: who archfleet logs in as, whether it goes through sudo, and archfleet's
own known_hosts file.

    ssh:
      user: admin                    # default: root
      sudo: true                     # default: true when the user is not root
      port: 22
      key_file: ~/.ssh/id_ed25519    # must exist when given
      known_hosts: ~/.config/archfleet/known_hosts   # archfleet's own file (the default)
      groups: {GROUP: {user, sudo, port, key_file}}  # GROUP must be an inventory group
      hosts:  {HOST:  {user, sudo, port, key_file}}  # HOST must be an inventory host

Per host and key, the first that says it wins: the inventory's host data (``ssh_user``, ``_sudo``, ``ssh_port``,
``ssh_key``), ``ssh.hosts``, ``ssh.groups`` (in the order they are listed, for a host in several), the top level,
the defaults. Host keys: a host whose inventory names its own ``ssh_known_hosts_file`` (the lab's inventory does)
keeps it unless ``ssh.known_hosts`` is written out; every other host is checked against archfleet's known_hosts
with ``accept-new`` (a new host's key is recorded on first use, a changed key is refused).
``connection_data`` is the pure function that merges all this for one host; ``apply_ssh`` writes it into the
loaded inventory's host data, so every command and deploy sees the same connection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archfleet.schema import Mapping, Node

if TYPE_CHECKING:
    from archfleet.fleet import Fleet

DEFAULT_USER = "root"
DEFAULT_PORT = 22
DEFAULT_KNOWN_HOSTS = "~/.config/archfleet/known_hosts"
ACCEPT_NEW = "accept-new"
USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
# host data key -> the SshSettings field it overrides (inventory data wins over the fleet file)
INVENTORY_KEYS = {"ssh_user": "user", "_sudo": "sudo", "ssh_port": "port", "ssh_key": "key_file"}


@dataclass(frozen=True)
class SshSettings:
    """One level of ``ssh:`` (the top, a group or a host); None: not said at this level."""

    user: str | None = None
    sudo: bool | None = None
    port: int | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class SshSpec:
    top: SshSettings = field(default_factory=SshSettings)
    known_hosts: str = str(Path(DEFAULT_KNOWN_HOSTS).expanduser())
    known_hosts_given: bool = False  # `ssh.known_hosts` is written out: it applies to every host
    groups: dict[str, SshSettings] = field(default_factory=dict)
    hosts: dict[str, SshSettings] = field(default_factory=dict)
    # where each group and host entry is, to name its line when the inventory has no such group or host
    nodes: dict[tuple[str, str], Node] = field(default_factory=dict, compare=False, repr=False)


def _settings(section: Mapping, base_dir: Path) -> SshSettings:
    user = section.string("user", None)
    if user is not None and not USER_NAME.fullmatch(user):
        section.fail("user", f"{user!r} is not a user name (letters, digits, '_', '.', '-'; up to 32)")
    sudo = section.boolean("sudo", None)
    port = section.integer("port", None, minimum=1, maximum=65535)
    key_text = section.string("key_file", None)
    key_file = None
    if key_text is not None:
        path = base_dir / Path(key_text).expanduser()
        if not path.is_file():
            section.fail("key_file", f"{key_text}: no such file (the private key archfleet logs in with)")
        key_file = str(path)
    return SshSettings(user, sudo, port, key_file)


def _entries(section: Mapping | None, kind: str, base_dir: Path, nodes: dict[tuple[str, str], Node]
             ) -> dict[str, SshSettings]:
    if section is None:
        return {}
    entries: dict[str, SshSettings] = {}
    for name, node in section.entries():
        entry = Mapping(node)
        entries[name] = _settings(entry, base_dir)
        entry.done()
        nodes[(kind, name)] = node
    return entries


def parse_ssh(section: Mapping | None, fleet: Fleet) -> SshSpec:
    """The ``ssh:`` section (absent: every default)."""
    if section is None:
        return SshSpec()
    base_dir = fleet.base_dir
    top = _settings(section, base_dir)
    known_text = section.string("known_hosts", None)
    nodes: dict[tuple[str, str], Node] = {}
    groups = _entries(section.mapping("groups"), "groups", base_dir, nodes)
    hosts = _entries(section.mapping("hosts"), "hosts", base_dir, nodes)
    section.done()
    known_hosts = str(base_dir / Path(known_text).expanduser()) if known_text else SshSpec().known_hosts
    if known_text is not None and Path(known_hosts).is_dir():
        section.fail("known_hosts", f"{known_text} is a folder; known_hosts is a file (it is created when missing)")
    return SshSpec(top, known_hosts, known_text is not None, groups, hosts, nodes)


def check_inventory(spec: SshSpec, groups: AnyMapping[str, list[str]], path: str = "ssh") -> None:
    """``ssh.groups`` and ``ssh.hosts`` name only groups and hosts of the inventory (``{group: [hosts]}``)."""
    every = set(groups.get("all", []))
    for (kind, name), node in spec.nodes.items():
        if kind == "groups" and name not in groups:
            known = ", ".join(sorted(g for g in groups if g != "all")) or "none"
            node.fail(f"no inventory group named {name!r} (groups: {known})")
        if kind == "hosts" and name not in every:
            node.fail(f"no inventory host named {name!r} (hosts: {', '.join(sorted(every)) or 'none'})")


def connection_data(spec: SshSpec, host: str, host_groups: list[str], inventory_data: AnyMapping[str, Any]
                    ) -> dict[str, Any]:
    """The effective connection data of one host (pure): ``ssh_user``, ``_sudo``, ``ssh_port``, ``ssh_key``
    (when there is one), ``ssh_known_hosts_file`` and ``ssh_strict_host_key_checking``, merged from the inventory's
    host data, ``ssh.hosts``, ``ssh.groups`` (in their listed order), the top level and the defaults."""
    levels = [spec.hosts.get(host)] + [spec.groups[g] for g in spec.groups if g in host_groups] + [spec.top]
    chosen: dict[str, Any] = {}
    for data_key, attribute in INVENTORY_KEYS.items():
        value = inventory_data.get(data_key)
        if value is None:
            value = next((getattr(level, attribute) for level in levels
                          if level is not None and getattr(level, attribute) is not None), None)
        chosen[attribute] = value
    user = str(chosen["user"] or DEFAULT_USER)
    sudo = chosen["sudo"]
    data: dict[str, Any] = {
        "ssh_user": user,
        "_sudo": bool(user != "root" if sudo is None else sudo),
        "ssh_port": int(chosen["port"] or DEFAULT_PORT),
    }
    if chosen["key_file"]:
        data["ssh_key"] = str(chosen["key_file"])
    own_file = inventory_data.get("ssh_known_hosts_file")
    if own_file and not spec.known_hosts_given:
        data["ssh_known_hosts_file"] = str(own_file)
        data["ssh_strict_host_key_checking"] = inventory_data.get("ssh_strict_host_key_checking") or "yes"
    else:
        data["ssh_known_hosts_file"] = spec.known_hosts
        data["ssh_strict_host_key_checking"] = ACCEPT_NEW
    return data


def host_groups_of(groups: AnyMapping[str, list[str]]) -> dict[str, list[str]]:
    """``{host: [its groups]}`` from ``{group: [hosts]}``."""
    result: dict[str, list[str]] = {}
    for group, members in groups.items():
        for member in members:
            result.setdefault(member, []).append(group)
    return result


def apply_ssh(spec: SshSpec, inventory: Any, groups: AnyMapping[str, list[str]]) -> None:
    """Write each host's effective connection data into the loaded pyinfra inventory's host data."""
    memberships = host_groups_of(groups)
    for host in inventory:
        current = {key: host.data.get(key) for key in (*INVENTORY_KEYS, "ssh_known_hosts_file",
                                                       "ssh_strict_host_key_checking")}
        for key, value in connection_data(spec, host.name, memberships.get(host.name, []), current).items():
            setattr(host.data, key, value)


_LOADING: set[Path] = set()  # fleet files being turned into an inventory (a fleet naming this inventory loops)


def fleet_inventory_groups(path: Path | None = None) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The fleet file's inventory as pyinfra inventory groups, each host with its whole merged data (connection data
    from ``ssh:`` included): what ``inventories/fleet.py`` gives the pyinfra CLI, so a deploy it runs connects as
    ``archfleet sync`` does."""
    from archfleet.errors import InputError
    from archfleet.fleet import default_fleet_path, load_fleet
    from archfleet.inventory_file import group_names

    resolved = (path or default_fleet_path()).resolve()
    if resolved in _LOADING:
        raise InputError(f"{resolved}: inventory: a fleet file cannot use inventories/fleet.py, which reads it")
    _LOADING.add(resolved)
    try:
        fleet = load_fleet(resolved)
    finally:
        _LOADING.discard(resolved)
    if fleet.hosts is None:
        raise InputError(f"{resolved}: the file has no `inventory:`, so it names no hosts")
    data = {host.name: {"archfleet_fleet": str(resolved), **host.data.dict()} for host in fleet.hosts}
    from archfleet.known_hosts import ensure_file

    recording = {d["ssh_known_hosts_file"] for d in data.values()
                 if d.get("ssh_strict_host_key_checking") == ACCEPT_NEW}
    for file in recording:
        ensure_file(file)  # paramiko cannot record a first key in a file (or folder) that does not exist yet
    return {group: [(name, data[name]) for name in members]
            for group, members in group_names(fleet.hosts).items() if group != "all"}
