"""The inventory reader inside a deploy: ``deploys/host.py`` loads the fleet file, and with it the fleet's inventory,
while pyinfra prepares the other hosts in greenlets that share pyinfra's context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gevent
import pytest
from pyinfra.api import State
from pyinfra.context import ctx_state

from archfleet.inventory_file import group_names, load_inventory


def test_an_inventory_that_waits_leaves_the_deploys_state_to_the_other_hosts(tmp_path: Path) -> None:
    """A dynamic inventory that waits on the network (inventories/ec2.py) lets another host's operations run; they
    must still find the deploy's State (pyinfra refuses operations outside its Prepare/Execute stages)."""
    inventory = tmp_path / "inventory.py"
    inventory.write_text("import gevent\ngevent.sleep(0.05)  # as a network call does under gevent\nweb = ['a']\n")
    deploy_state = State(check_for_changes=False)
    seen = []
    with ctx_state.use(deploy_state):
        loader = gevent.spawn(load_inventory, inventory)
        other_host = gevent.spawn(lambda: seen.append(ctx_state.get()))
        gevent.joinall([loader, other_host])
        assert ctx_state.get() is deploy_state
    assert group_names(loader.get())["web"] == ["a"]
    assert seen == [deploy_state]


def test_outside_a_deploy_an_inventory_gets_a_state_of_its_own(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.py"
    inventory.write_text("from pyinfra.context import ctx_state\nweb = [('a', {'had_state': ctx_state.isset()})]\n")
    with ctx_state.use(None):  # outside any deploy (another test of this process may have left a State set)
        loaded = load_inventory(inventory)
        assert loaded.get_host("a").data.get("had_state") is True and not ctx_state.isset()


INVENTORIES = {
    "plain": "web = ['a', 'b']\ndb = ['c']\n",
    "group data and host data": (
        "web = (['a', ('b', {'port': 2, 'x': 'host'})], {'x': 'web', 'y': 'web'})\n"
        "db = ([('b', {'z': 'db-mention'}), 'c'], {'y': 'db', 'w': 'db'})\n"
    ),
    "explicit all with data, a group host missing from all": (
        "all = (['a', ('b', {'x': 'all-mention'})], {'x': 'global', 'g': 1})\n"
        "web = (['a', 'b', 'ghost'], {'x': 'web'})\n"
        "_private = ['ignored']\n"
    ),
    "empty group and repeated mentions": (
        "spare = ([], {'x': 'spare'})\n"
        "web = [('a', {'x': 1}), ('a', {'x': 2, 'y': 3})]\n"
        "late = ([('a', {'x': 4})], {'y': 'late', 'z': 'late'})\n"
    ),
}


@pytest.mark.parametrize("name", sorted(INVENTORIES))
def test_the_hosts_groups_and_data_are_pyinfras_own(tmp_path: Path, name: str) -> None:
    """The lean HostInventory answers as pyinfra's Inventory of the same file does, key by key, and so does the
    pyinfra Inventory made from it (what a sync that must change hosts connects with)."""
    from pyinfra.api import Inventory

    from archfleet.inventory_file import HostInventory, pyinfra_inventory, read_groups

    path = tmp_path / "inventory.py"
    path.write_text(INVENTORIES[name])
    lean = load_inventory(path)
    assert isinstance(lean, HostInventory)
    groups = read_groups(path)
    every = groups.pop("all")
    reference = Inventory(every, **groups)
    keys = {"port", "x", "y", "z", "w", "g", "missing"}

    def view(inventory: Any) -> dict[str, Any]:
        return {
            "hosts": sorted(host.name for host in inventory),
            "groups": group_names(inventory),
            "data": {host.name: {key: host.data.get(key, "-") for key in keys} for host in inventory},
            "dict": {host.name: {k: v for k, v in host.data.dict().items() if k in keys} for host in inventory},
            "get_group": {g: [h.name for h in (inventory.get_group(g, None) or [])] for g in [*groups, "nope"]},
        }

    assert view(lean) == view(reference)
    for host in lean:
        host.data.ssh_user = "admin"  # what the fleet's `ssh:` does at load
    converted = pyinfra_inventory(lean)
    assert isinstance(converted, Inventory)
    expected = view(reference)
    for host in expected["data"]:
        assert converted.get_host(host).data.get("ssh_user") == "admin"
    assert {k: v for k, v in view(converted).items() if k != "dict"} == {k: v for k, v in expected.items()
                                                                         if k != "dict"}


def test_an_inventory_of_connectors_is_pyinfras_from_the_start(tmp_path: Path) -> None:
    from pyinfra.api import Inventory

    path = tmp_path / "inventory.py"
    path.write_text("local = ['@local']\n")
    assert isinstance(load_inventory(path), Inventory)
