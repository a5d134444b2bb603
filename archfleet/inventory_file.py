"""Reading a pyinfra inventory file's groups without connecting to anything (for load-time validation)."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from archfleet.errors import ArchfleetError, InputError


def host_name(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, tuple) and entry and isinstance(entry[0], str):
        return entry[0]
    return None


def inventory_groups(path: Path) -> dict[str, list[str]]:
    """``{group: [host names]}`` as pyinfra would read them: every top-level list or tuple not named ``_*``.

    pyinfra also puts every host in the group ``all``.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such inventory file")
    try:
        namespace = runpy.run_path(str(path))
    except ArchfleetError:
        raise
    except Exception as error:  # an inventory is user code: report its failure in one line
        raise InputError(f"{path}: the inventory failed to load: {type(error).__name__}: {error}") from None
    groups: dict[str, list[str]] = {}
    for name, value in namespace.items():
        if name.startswith("_") or not isinstance(value, list | tuple):
            continue
        names = [host_name(entry) for entry in value]
        if all(n is not None for n in names):
            groups[name] = [n for n in names if n is not None]
    groups["all"] = sorted({h for members in groups.values() for h in members})
    return groups


def group_names(inventory: Any) -> dict[str, list[str]]:
    """A loaded pyinfra inventory's groups as ``{group: [host names]}`` (for placement inside a deploy)."""
    return {name: [member.name for member in members] for name, members in inventory.groups.items()}
