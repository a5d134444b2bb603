"""
Services: every host runs its declared services from their multi-arch tags, each pulling the image built for
its own platform (pinned by digest), proven by the registry pre-flight before anything is touched.

    pyinfra inventories/lab.py deploys/services.py            # fleet file: $ARCHFLEET_FLEET or ./fleet.yaml
    archfleet sync [--dry] [--limit HOST|GROUP]             # the same, with a per-host summary

Per host, a no-op run costs one command (the ServicesState fact). Decisions, per service:
create (missing), recreate (spec or image digest changed), start (stopped), or nothing; each is logged with
its reason, also under --dry.
"""

from pyinfra import host, inventory

from archfleet.fleet import fleet_for_deploy
from archfleet.fleet.services import check_placement
from archfleet.inventory_file import group_names
from archfleet.platforms import from_uname
from archfleet.services import preflight
from archfleet.services.desired import desired_container
from facts.services import ServicesState
from tasks import services

fleet = fleet_for_deploy(host.data.get("archfleet_fleet"))
groups = group_names(inventory)
placement = check_placement(fleet.services, groups)
specs = placement.get(host.name, [])
fleet_context: dict[str, object] = {
    "hosts": {h.name: {"address": h.data.get("ssh_hostname") or h.name} for h in inventory},
    "service_hosts": {
        name: sorted(h for h, host_specs in placement.items() if any(s.name == name for s in host_specs))
        for name in fleet.services
    },
}

state = host.get_fact(ServicesState)
kernel, _, machine = ((state or {}).get("platform") or "unknown unknown").partition(" ")
platform = from_uname(kernel, machine) if state else None

# Every host walks every service in the same order (so each operation is one service on all hosts); start
# order: highest stop_order first, so that what stops first (a CI runner) starts last.
for spec in sorted(fleet.services.values(), key=lambda s: (-s.stop_order, s.name)):
    if spec.name not in {s.name for s in specs} or platform is None:
        services.service_running(
            name=f"Service {spec.name} runs its image for this host's platform", desired=None, state=state
        )
        continue
    pinned = preflight.pin_image(fleet, spec, host.name, platform)
    desired = desired_container(
        spec,
        tag=pinned.tag,
        repository=pinned.repository,
        digest=pinned.digest,
        host_name=host.name,
        platform=str(platform),
        secret_values=preflight.secret_values(fleet, spec),
        fleet_context=fleet_context,
    )
    services.service_running(
        name=f"Service {spec.name} runs its image for this host's platform", desired=desired, state=state
    )

services.undeclared_services_removed(
    name="Containers of undeclared services removed", keep=[spec.name for spec in specs], state=state
)
