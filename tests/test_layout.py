"""The rooms of ``archfleet/`` (docs/architecture.md): every import of archfleet's own code points down the list, so
there are no circles between rooms. Read from the source with ``ast``: imports inside functions count; imports for
type annotations only (under ``if TYPE_CHECKING:``) do not, as they never run. The pyinfra side (the project's
``deploys/``, ``inventories/``, ``tasks/`` and ``facts/``, linked into the package as ``archfleet.tasks`` and so on)
is read through the links and has rooms of its own."""

from __future__ import annotations

import ast
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "archfleet"
LINKED = ("deploys", "inventories", "tasks", "facts")  # the project's folders, linked into the package

# Top to bottom, as docs/architecture.md lists them. A module belongs to the room that names its first part.
ROOMS: list[tuple[str, ...]] = [
    ("deploys", "inventories"),
    ("cli", "console", "commands", "pyinfra_run"),
    ("sync", "connectors"),
    ("spot",),
    ("tasks",),
    ("services",),
    ("images", "registry_client", "credentials"),
    ("fleet",),
    ("placement",),
    ("schema",),
    ("inventory_file",),
    ("lab",),
    ("shipped",),
    ("facts",),
    ("platforms", "table", "run", "ssh", "known_hosts", "errors", "references", "user_cache", "operator"),
]
# The one call up the list, by design: the load step (archfleet.fleet.load_fleet) renders every service for each of
# its hosts with the code that renders them for a sync, so that a bad template is an error at load.
UPWARD_BY_DESIGN = {("archfleet.fleet", "archfleet.services.desired")}


def room_of(module: str) -> int | None:
    first = module.split(".")[1] if module.count(".") else ""
    for index, prefixes in enumerate(ROOMS):
        if first in prefixes:
            return index
    return None


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    nodes: list[ast.AST] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            pending.extend(node.orelse)
            continue
        nodes.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def sources() -> dict[str, Path]:
    """Every module of the package by name, the linked folders' included (``os.walk`` follows the links)."""
    found = {}
    for folder, folders, files in os.walk(PACKAGE, followlinks=True):
        folders[:] = [name for name in folders if name != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = Path(folder) / name
                parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
                found[".".join(parts).removesuffix(".__init__")] = path
    return found


def imports() -> list[tuple[str, str]]:
    found = []
    for module, path in sorted(sources().items()):
        for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("archfleet."):
                found.append((module, node.module))
            elif isinstance(node, ast.Import):
                found += [(module, alias.name) for alias in node.names if alias.name.startswith("archfleet.")]
    return found


def test_the_linked_folders_are_read_through_their_links() -> None:
    modules = sources()
    for folder in LINKED:
        assert (PACKAGE / folder).is_symlink(), folder
        assert any(module.startswith(f"archfleet.{folder}.") for module in modules), folder
    assert "archfleet.tasks.service_commands" in modules and "archfleet.facts.service_reads" in modules


def test_sync_and_tasks_do_not_import_each_other() -> None:
    """The sync pipeline runs the step scripts of tasks/; nothing in tasks/ may ask the pipeline back."""
    upward = sorted({(module, target) for module, target in imports()
                     if module.startswith("archfleet.tasks") and target.startswith("archfleet.sync")})
    assert upward == []


def test_every_module_is_in_a_room() -> None:
    homeless = sorted({module for module, _ in imports() if room_of(module) is None and module != "archfleet"})
    assert homeless == [], "add them to a room here and in docs/architecture.md"


def test_imports_only_point_down_the_rooms() -> None:
    upward = []
    for module, target in imports():
        here, there = room_of(module), room_of(target)
        if here is None or there is None or there >= here:
            continue
        if (module, target) not in UPWARD_BY_DESIGN:
            upward.append(f"{module} (room {here + 1}) imports {target} (room {there + 1})")
    assert upward == []


def test_the_architecture_page_lists_the_same_rooms_in_the_same_order() -> None:
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = page.split("Rooms of `archfleet/`", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    listed = []
    for cell in first_cells:
        names = [part.strip().strip("`").rstrip("/").removesuffix(".py") for part in cell.replace("+", ",").split(",")]
        listed.append({name for name in names if name})
    assert [set(prefixes) for prefixes in ROOMS] == listed
