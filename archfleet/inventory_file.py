"""Reading a pyinfra inventory file: the one reader every command and deploy uses.

It follows pyinfra's own rules for inventory files (``pyinfra_cli.inventory.make_inventory_from_files``): every
top-level list of hosts is a group, a tuple is ``(hosts, group data)``, a host is a name or ``(name, data)``,
names starting with ``_`` are ignored, ``all`` holds every host (with its data), and the file's own name is a group
too; the result is pyinfra's own ``Inventory``. It does not import ``pyinfra_cli``, whose import monkey-patches the
whole process for gevent (the console script patches first, on purpose; a library caller must not be patched
behind its back). ``group_data/`` folders are not read. Loading an inventory connects to nothing (an inventory
file is Python: a dynamic one, such as ``inventories/ec2.py``, may call an API of its own).
"""

from __future__ import annotations

import contextlib
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
    from pyinfra.api import State
    from pyinfra.context import ctx_state

    namespace: dict[str, Any] = {"__file__": str(path)}
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    # Inventory files may read pyinfra's context: give them a State when there is none. Inside a deploy (the fleet
    # file loaded by deploys/host.py) the deploy's own stays: pyinfra prepares hosts in greenlets that share the
    # context, and a dynamic inventory that waits on the network (inventories/ec2.py) lets another host's
    # operations run in the meantime, which must not find a State of ours.
    own_state = contextlib.nullcontext() if ctx_state.isset() else ctx_state.use(State(check_for_changes=False))
    with own_state:
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


def load_inventory(path: Path, where: str | None = None) -> Inventory:
    """The pyinfra Inventory of ``path``; a missing or failing file is one line (prefixed by ``where``)."""
    from pyinfra.api import Inventory

    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise InputError(f"{prefix}{path}: no such inventory file")
    try:
        groups = read_groups(path)
        every = groups.pop("all")
        return Inventory(every, **groups)
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
