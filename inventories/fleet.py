"""pyinfra inventory of the fleet file's hosts (``$ARCHFLEET_FLEET``, else ./fleet.yaml), with the connection data
of its ``ssh:`` section merged in (user, sudo, port, key, archfleet's known_hosts): a deploy run with the pyinfra CLI
connects exactly as ``archfleet sync`` does. Groups are those of the inventory the fleet file names.

    ARCHFLEET_FLEET=fleet.yaml pyinfra inventories/fleet.py deploys/host.py   # = archfleet hosts bootstrap
"""

from archfleet.fleet.ssh import fleet_inventory_groups

globals().update(fleet_inventory_groups())
