"""Reading a pyinfra inventory file: the one reader every command and deploy uses.

It follows pyinfra's own rules for inventory files (``pyinfra_cli.inventory.make_inventory_from_files``): every
top-level list of hosts is a group, a tuple is ``(hosts, group data)``, a host is a name or ``(name, data)``,
names starting with ``_`` are ignored, ``all`` holds every host (with its data), and the file's own name is a group
too. It does not import ``pyinfra_cli``, whose import monkey-patches the whole process for gevent (the console
script patches first, on purpose; a library caller must not be patched behind its back). ``group_data/`` folders
are not read. Loading an inventory connects to nothing (an inventory file is Python: a dynamic one, such as
``inventories/ec2.py``, may call an API of its own).

The result is a ``HostInventory``: the hosts, groups and data exactly as pyinfra's ``Inventory`` would give them
(``host.data`` looks up override, host, group and inventory-wide data in pyinfra's order), without importing
pyinfra, so that a no-op ``archfleet sync`` never pays for it; ``pyinfra_inventory()`` turns it into pyinfra's own
when a host must be reached through pyinfra. An inventory that names a connector (``@local``, ``@docker/...``),
whose hosts only pyinfra can expand, is pyinfra's ``Inventory`` from the start.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archfleet.errors import ArchfleetError, InputError

if TYPE_CHECKING:
    from pyinfra.api import Inventory


def is_host(entry: Any) -> bool:
    return isinstance(entry, str) or (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)
                                      and isinstance(entry[1], dict))


def host_name(entry: Any) -> str:
    return str(entry[0] if isinstance(entry, tuple) else entry)


def is_group(name: str, value: Any) -> bool:
    if name.startswith("_"):
        return False
    hosts = value[0] if isinstance(value, tuple) and value else value
    return isinstance(hosts, list) and all(is_host(entry) for entry in hosts)


def read_groups(path: Path) -> dict[str, tuple[list[Any], dict[str, Any]]]:
    """The file's groups as pyinfra reads them: ``{group: (hosts, group data)}``, ``all`` included."""
    namespace: dict[str, Any] = {"__file__": str(path)}
    text = path.read_text(encoding="utf-8")
    code = compile(text, str(path), "exec")
    with pyinfra_context_for(text):
        exec(code, namespace)
    groups: dict[str, tuple[list[Any], dict[str, Any]]] = {}
    for name, value in namespace.items():
        if is_group(name, value):
            hosts, data = value if isinstance(value, tuple) else (value, {})
            groups[name] = (list(hosts), dict(data))
    if "all" not in groups:  # every host once, with the data its first mention gives it
        every: dict[str, Any] = {}
        for hosts, _ in groups.values():
            for entry in hosts:
                every.setdefault(host_name(entry), entry)
        groups["all"] = (list(every.values()), {})
    groups.setdefault(path.name.rsplit(".", 1)[0], ([host_name(e) for e in groups["all"][0]], {}))
    return groups


IMPORTS_PYINFRA = re.compile(r"^\s*(from|import)\s+pyinfra\b", re.MULTILINE)


def pyinfra_context_for(text: str) -> contextlib.AbstractContextManager[Any]:
    """Inventory files may read pyinfra's context: give them a State when there is none (only when pyinfra is in
    play: the file imports it, or this process runs it). Inside a deploy (the fleet file loaded by deploys/host.py)
    the deploy's own stays: pyinfra prepares hosts in greenlets that share the context, and a dynamic inventory
    that waits on the network (inventories/ec2.py) lets another host's operations run in the meantime, which must
    not find a State of ours."""
    if not IMPORTS_PYINFRA.search(text) and "pyinfra.context" not in sys.modules:
        return contextlib.nullcontext()
    from pyinfra.api import State
    from pyinfra.context import ctx_state

    return contextlib.nullcontext() if ctx_state.isset() else ctx_state.use(State(check_for_changes=False))


class HostData:
    """A host's data as pyinfra's ``host.data`` gives it: what was set on it (``host.data.key = value``), then its
    own data, its groups' data (a later group wins) and the inventory's ``all`` data."""

    def __init__(self, *layers: dict[str, Any]):
        self.__dict__["_layers"] = ({}, *layers)

    def __getattr__(self, key: str) -> Any:
        for layer in self.__dict__["_layers"]:
            if key in layer:
                return layer[key]
        raise AttributeError(f"no host data {key!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        self.__dict__["_layers"][0][key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def dict(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for layer in reversed(self.__dict__["_layers"]):
            merged.update(layer)
        return merged


class InventoryHost:
    def __init__(self, name: str, groups: list[str], data: HostData):
        self.name = name
        self.groups = groups
        self.data = data

    def __repr__(self) -> str:
        return f"InventoryHost({self.name!r})"


class HostInventory:
    """An inventory file's hosts and groups as pyinfra's ``Inventory(every, **groups)`` makes them, for names that
    are host names (no ``@connector``): a host in a group but not in ``all`` is no host; a host's data is every
    mention's data (groups in order, then ``all``'s), over its groups' data, over ``all``'s data."""

    def __init__(self, every: tuple[list[Any], dict[str, Any]], groups: dict[str, tuple[list[Any], dict[str, Any]]]):
        entries, inventory_data = every
        names = list(dict.fromkeys(host_name(entry) for entry in entries))
        own_data: dict[str, dict[str, Any]] = {name: {} for name in names}
        memberships: dict[str, list[str]] = {name: [] for name in names}
        self.group_data: dict[str, dict[str, Any]] = {}
        for group, (members, data) in groups.items():
            self.group_data[group] = data
            for entry in members:
                name = host_name(entry)
                if name in own_data:
                    own_data[name].update(entry[1] if isinstance(entry, tuple) else {})
                    if group not in memberships[name]:
                        memberships[name].append(group)
        for entry in entries:
            own_data[host_name(entry)].update(entry[1] if isinstance(entry, tuple) else {})
        self.hosts: dict[str, InventoryHost] = {}
        for name in names:
            groups_data: dict[str, Any] = {}
            for group in memberships[name]:
                groups_data.update(self.group_data[group])
            self.hosts[name] = InventoryHost(name, memberships[name],
                                             HostData(own_data[name], groups_data, inventory_data))
        self.groups: dict[str, list[InventoryHost]] = {}
        for name, host in self.hosts.items():
            for group in memberships[name]:
                self.groups.setdefault(group, []).append(host)

    def __iter__(self) -> Iterator[InventoryHost]:
        return iter(self.hosts.values())

    def __len__(self) -> int:
        return len(self.hosts)

    def get_host(self, name: str, default: Any = None) -> InventoryHost | Any:
        return self.hosts.get(name, default)

    def get_group(self, name: str, default: Any = None) -> list[InventoryHost] | Any:
        return self.groups.get(name, default)


def pyinfra_inventory(inventory: Any) -> Inventory:
    """pyinfra's own Inventory of the same hosts, groups and (whole) host data, ``host.data`` settings included."""
    from pyinfra.api import Inventory

    if not isinstance(inventory, HostInventory):
        return inventory  # type: ignore[no-any-return]  # already pyinfra's (an inventory of connectors)
    every = [(host.name, host.data.dict()) for host in inventory]
    groups: dict[str, tuple[list[str], dict[str, Any]]] = {
        group: ([member.name for member in members], {}) for group, members in inventory.groups.items()}
    groups.update({group: ([], {}) for group in inventory.group_data if group not in groups})
    return Inventory((every, {}), **groups)


def load_inventory(path: Path, where: str | None = None) -> HostInventory | Inventory:
    """The hosts of ``path``; a missing or failing file is one line (prefixed by ``where``)."""
    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise InputError(f"{prefix}{path}: no such inventory file")
    try:
        groups = read_groups(path)
        every = groups.pop("all")
        if any(host_name(entry).startswith("@") for entry in every[0]):  # only pyinfra can expand a connector
            from pyinfra.api import Inventory

            return Inventory(every, **groups)
        return HostInventory(every, groups)
    except ArchfleetError as error:
        raise InputError(f"{prefix}{path}: {error}") from None
    except Exception as error:  # an inventory is user code: report its failure in one line
        raise InputError(f"{prefix}{path}: the inventory failed to load: {type(error).__name__}: {error}") from None


def group_names(inventory: Any) -> dict[str, list[str]]:
    """A pyinfra inventory's groups as ``{group: [host names]}`` (every host is also in ``all``)."""
    groups: dict[str, list[str]] = {name: [] for name in inventory.group_data}  # empty groups count too
    groups.update({name: [member.name for member in members] for name, members in inventory.groups.items()})
    groups["all"] = sorted(host.name for host in inventory)
    return groups


def host_addresses(inventory: Any) -> dict[str, str]:
    """``{host: address}``: the address a host is reached at (``ssh_hostname``, else its name)."""
    return {host.name: str(host.data.get("ssh_hostname") or host.name) for host in inventory}
