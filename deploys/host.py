"""
Host bootstrap for hosts of either architecture running Debian 12/13, Ubuntu 22.04/24.04 or Amazon Linux 2023
(the distro read from /etc/os-release by the DockerEngine fact; what differs per distro is in tasks/distros.py):

- the Docker engine installed (the distro's own package when missing: apt ``docker.io``, dnf ``docker``), running,
  enabled at boot where there is an init system;
- the private registry's CA trusted by Docker, and Docker logged in to the registry;
- Docker logged in to every other registry this host's services pull from (the fleet file's ``registry:`` and
  ``registries:``, Docker's config.json and its credential helpers, ECR), each with its CA when it has one.

    pyinfra inventories/lab.py deploys/host.py

Registry settings come from host data: ``registry_address``, ``registry_username``,
``registry_password_file`` (a local file; the password never appears in a command line or in output)
and ``registry_ca_file`` (a local file; optional for registries with a public certificate), as the lab's inventory
gives them. A host without ``registry_address`` (an EC2 instance of ``inventories/ec2.py``) gets the fleet file's
own ``registry:`` instead (``{lab: true}``: the lab's registry, CA and login) when the fleet file speaks for it
(a host of its ``inventory:``, or any host when it names none); else the engine only. The fleet file (host data
``archfleet_fleet``, else ``$ARCHFLEET_FLEET`` or ./fleet.yaml, when there is one) also says which registries the
host's services pull from (archfleet.credentials.host_logins); a registry with no credentials anywhere is pulled
from anonymously.
ECR passwords are new on every request and last 12 hours: an ECR login is renewed when it is older than 11 hours.

A no-op run costs one command per registry plus one: the DockerEngine and RegistryAccess facts.
"""

from pathlib import Path

from pyinfra import host

from archfleet.credentials import RegistryLogin, host_logins, host_registry_login
from archfleet.fleet import default_fleet_path, fleet_for_deploy
from archfleet.sync.lock import lock_for_deploy
from archfleet.tasks import docker_engine


def trusted_and_logged_in(login: RegistryLogin) -> None:
    credentials = login.credentials
    docker_engine.registry_access(
        name=f"Docker trusts and is logged in to {login.registry}" if credentials
        else f"Docker trusts {login.registry} (anonymous pulls)",
        address=login.registry,
        username=credentials.username if credentials else None,
        password=credentials.secret if credentials else None,
        ca_certificate=login.ca_file.read_bytes() if login.ca_file else None,
        refresh_after=login.refresh_after,
    )


# The fleet file first: a file that does not load stops the deploy before any host is locked.
fleet_file = host.data.get("archfleet_fleet") or default_fleet_path()
fleet = fleet_for_deploy(fleet_file) if Path(fleet_file).is_file() else None

# The fleet lock (docs/lock.md): this host's, taken before the first operation, released after the last.
lock_for_deploy("pyinfra deploys/host.py")

docker_engine.engine_running(name="Docker engine installed, running and enabled at boot")

# The fleet's own registry: from host data (the lab's inventory), else the fleet file's `registry:` (EC2 hosts).
own_registry = host_registry_login(host.data, host.name, fleet)
if own_registry is not None:
    trusted_and_logged_in(own_registry)

# Every other registry this host's services pull from (several registries in one fleet).
for login in host_logins(fleet, host.name) if fleet is not None else []:
    if own_registry is not None and login.registry == own_registry.registry:
        continue  # trusted and logged in above
    if login.credentials is None and login.ca_file is None:
        continue  # a public registry with a public certificate: nothing to set up
    trusted_and_logged_in(login)

# Spot instances (host data ``spot: true`` or ``lifecycle: spot``, as inventories/ec2.py sets): the interruption
# watcher (tasks/spot_watcher.py). It polls ``spot_metadata_url`` (default http://169.254.169.254) and, on a notice,
# stops the containers in ``spot_stop_order`` in that order (the CI runner first; container names archfleet-<service>).
# Without ``spot_stop_order``, the order is the fleet file's services on this host by their ``stop_order``.
if str(host.data.get("spot")).lower() in ("true", "yes", "1") or host.data.get("lifecycle") == "spot":
    from archfleet.tasks import spot_watcher

    stop_order = spot_watcher.stop_order_from(host.data.get("spot_stop_order"))
    if not stop_order and fleet is not None:
        stop_order = fleet.placement.stop_order_on(host.name) if fleet.placement else []
    spot_watcher.interruption_watcher(
        name="Spot interruption watcher installed, enabled at boot and running",
        metadata_url=host.data.get("spot_metadata_url") or spot_watcher.DEFAULT_METADATA_URL,
        stop_order=stop_order,
    )
