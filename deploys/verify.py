"""
A read-only deploy that proves every host runs each declared service from the image built for its own platform:

    pyinfra inventories/lab.py deploys/verify.py      # fleet file: $ARCHFLEET_FLEET or ./fleet.yaml

A host with a problem fails with the reason; nothing is changed anywhere. `archfleet verify` prints the same
proof as a table.
"""

from pyinfra import host

from archfleet.facts.services import ServiceProof
from archfleet.fleet import fleet_for_deploy
from archfleet.services.proof import judge
from archfleet.tasks import services

fleet = fleet_for_deploy(host.data.get("archfleet_fleet"))
declared = [spec.name for spec in fleet.placement.services_on(host.name)] if fleet.placement else []
for row in judge(host.name, declared, host.get_fact(ServiceProof)):
    services.proven(name=f"Service {row.service} proven on its host's platform", row=row)
