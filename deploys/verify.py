"""
A read-only deploy that proves every host runs each declared service from the image built for its own platform:

    pyinfra inventories/lab.py deploys/verify.py      # fleet file: $ARCHFLEET_FLEET or ./fleet.yaml

A host with a problem fails with the reason; nothing is changed anywhere. `archfleet verify` prints the same
proof as a table.
"""

from pyinfra import host, inventory

from archfleet.fleet import fleet_for_deploy
from archfleet.fleet.services import check_placement
from archfleet.inventory_file import group_names
from archfleet.services.proof import judge
from facts.services import ServiceProof
from tasks import services

fleet = fleet_for_deploy(host.data.get("archfleet_fleet"))
groups = group_names(inventory)
declared = [spec.name for spec in check_placement(fleet.services, groups).get(host.name, [])]
for row in judge(host.name, declared, host.get_fact(ServiceProof)):
    services.proven(name=f"Service {row.service} proven on its host's platform", row=row)
