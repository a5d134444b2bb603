"""The inventory reader inside a deploy: ``deploys/host.py`` loads the fleet file, and with it the fleet's inventory,
while pyinfra prepares the other hosts in greenlets that share pyinfra's context."""

from __future__ import annotations

from pathlib import Path

import gevent
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
