"""
A read-only deploy that proves every host runs each declared service from the image built for its own platform:

    pyinfra inventories/lab.py deploys/verify.py      # fleet file: $ARCHFLEET_FLEET or ./fleet.yaml

A host with a problem fails with the reason; nothing is changed anywhere. `archfleet verify` prints the same
proof as a table. A disk that is filling (the fleet file's `disk:`) is a warning, as in `archfleet verify`.
"""

from pyinfra import host, logger

from archfleet.facts.services import ServiceProof
from archfleet.fleet import fleet_for_deploy
from archfleet.services.proof import judge
from archfleet.tasks import services

fleet = fleet_for_deploy(host.data.get("archfleet_fleet"))
declared = [spec.name for spec in fleet.placement.services_on(host.name)] if fleet.placement else []
proof = host.get_fact(ServiceProof)
for row in judge(host.name, declared, proof):
    services.proven(name=f"Service {row.service} proven on its host's platform", row=row)
disk = proof.get("disk")
if disk and (warning := fleet.disk.warning(disk)):
    logger.warning(f"{host.name}: the disk of {disk['path']} is filling: {warning}")
