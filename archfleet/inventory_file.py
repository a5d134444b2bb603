"""Reading a pyinfra inventory file: the one reader every command and deploy uses.

It is pyinfra's own (``pyinfra_cli.inventory.make_inventory_from_files``), so archfleet sees exactly the groups,
hosts and host data that `pyinfra INVENTORY ...` sees. Loading an inventory connects to nothing (an inventory
file is Python: a dynamic one, such as ``inventories/ec2.py``, may call an API of its own).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archfleet.errors import ArchfleetError, InputError

if TYPE_CHECKING:
    from pyinfra.api import Inventory


def load_inventory(path: Path, where: str | None = None) -> Inventory:
    """The pyinfra Inventory of ``path``; a missing or failing file is one line (prefixed by ``where``)."""
    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise InputError(f"{prefix}{path}: no such inventory file")
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory_from_files

    quiet = logging.getLogger("pyinfra")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with ctx_state.use(State(check_for_changes=False)):  # pyinfra reads inventory files inside a state
            return make_inventory_from_files(str(path))
    except ArchfleetError as error:
        raise InputError(f"{prefix}{path}: {error}") from None
    except Exception as error:  # an inventory is user code: report its failure in one line
        error = getattr(error, "exception", error)  # pyinfra wraps what the file raised
        if isinstance(error, ArchfleetError):
            raise InputError(f"{prefix}{path}: {error}") from None
        raise InputError(f"{prefix}{path}: the inventory failed to load: {type(error).__name__}: {error}") from None
    finally:
        quiet.setLevel(level)


def group_names(inventory: Any) -> dict[str, list[str]]:
    """A pyinfra inventory's groups as ``{group: [host names]}`` (every host is also in ``all``)."""
    groups = {name: [member.name for member in members] for name, members in inventory.groups.items()}
    groups["all"] = sorted(host.name for host in inventory)
    return groups


def host_addresses(inventory: Any) -> dict[str, str]:
    """``{host: address}``: the address a host is reached at (``ssh_hostname``, else its name)."""
    return {host.name: str(host.data.get("ssh_hostname") or host.name) for host in inventory}
