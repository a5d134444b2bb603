"""
Host bootstrap for Debian/Ubuntu hosts of either architecture:

- the Docker engine installed (Debian's package when missing), running, enabled at boot where there is
  an init system;
- the private registry's CA trusted by Docker, and Docker logged in to the registry.

    pyinfra inventories/lab.py deploys/host.py

Registry settings come from host data: ``registry_address``, ``registry_username``,
``registry_password_file`` (a local file; the password never appears in a command line or in output)
and ``registry_ca_file`` (a local file; optional for registries with a public certificate). A host
without ``registry_address`` gets the engine only.

A no-op run costs two commands per host: the DockerEngine and RegistryAccess facts.
"""

from pathlib import Path

from pyinfra import host

from tasks import docker_engine

docker_engine.engine_running(name="Docker engine installed, running and enabled at boot")

registry_address = host.data.get("registry_address")
if registry_address:
    ca_file = host.data.get("registry_ca_file")
    docker_engine.registry_access(
        name=f"Docker trusts and is logged in to {registry_address}",
        address=registry_address,
        username=host.data.get("registry_username"),
        password=Path(host.data.get("registry_password_file")).read_text().strip(),
        ca_certificate=Path(ca_file).read_bytes() if ca_file else None,
    )

# Spot instances (host data ``spot: true`` or ``lifecycle: spot``, as inventories/ec2.py sets): the interruption
# watcher (tasks/spot_watcher.py). It polls ``spot_metadata_url`` (default http://169.254.169.254) and, on a notice,
# stops the containers in ``spot_stop_order`` in that order (the CI runner first; container names archfleet-<service>).
# Without ``spot_stop_order``, the order is the fleet file's services on this host by their ``stop_order``.
if str(host.data.get("spot")).lower() in ("true", "yes", "1") or host.data.get("lifecycle") == "spot":
    from archfleet.fleet import default_fleet_path, fleet_for_deploy
    from tasks import spot_watcher

    stop_order = spot_watcher.stop_order_from(host.data.get("spot_stop_order"))
    fleet_file = host.data.get("archfleet_fleet") or default_fleet_path()
    if not stop_order and Path(fleet_file).is_file():
        fleet = fleet_for_deploy(fleet_file)
        stop_order = fleet.placement.stop_order_on(host.name) if fleet.placement else []
    spot_watcher.interruption_watcher(
        name="Spot interruption watcher installed, enabled at boot and running",
        metadata_url=host.data.get("spot_metadata_url") or spot_watcher.DEFAULT_METADATA_URL,
        stop_order=stop_order,
    )
