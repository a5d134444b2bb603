"""The fleet file: one YAML file declaring the registry, hosts, images, services, spot fleets and the laptop.

It is read and validated once, at load time, against the typed sections below; any error names the file,
line and key, exits 2, and nothing is touched on any host. ``fleet.yaml`` at the top of the project is the
commented example and the reference documentation.

Sections (each parsed by its own module in this package):

- ``registry``    -> archfleet.fleet.registry.RegistrySpec
- ``inventory``   -> a pyinfra inventory file (path) the services run on
- ``images``      -> archfleet.fleet.images.ImageSpec per image
- ``services``    -> archfleet.fleet.services.ServiceSpec per service
- ``spot_fleets`` -> archfleet.fleet.spot.SpotFleetSpec per fleet
- ``laptop``      -> archfleet.fleet.laptop.LaptopProfile
- ``ssh``         -> archfleet.fleet.ssh.SshSpec (SSH user, sudo, port, key and archfleet's known_hosts per host)
- ``builders``    -> archfleet.fleet.builders.BuilderChoice per platform (which engine builds it)
- ``disk``        -> archfleet.fleet.disk.DiskSpec (when ``verify`` warns that a host's disk is filling)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from archfleet.fleet.disk import DiskSpec, parse_disk
from archfleet.fleet.registry import RegistrySpec, parse_registry
from archfleet.fleet.rollout import RolloutSpec, TimeoutsSpec, parse_releases, parse_rollout, parse_timeouts
from archfleet.fleet.ssh import SshSpec, apply_ssh, check_inventory, parse_ssh
from archfleet.placement import Placement, place
from archfleet.references import parse
from archfleet.schema import Mapping, load_yaml

if TYPE_CHECKING:
    from pyinfra.api import Inventory

    from archfleet.fleet.builders import BuilderChoice
    from archfleet.fleet.images import ImageSpec
    from archfleet.fleet.laptop import LaptopProfile
    from archfleet.fleet.registries import RegistryEntry
    from archfleet.fleet.services import ServiceSpec
    from archfleet.fleet.spot import SpotFleetSpec
    from archfleet.inventory_file import HostInventory
    from archfleet.platforms import Platform
    from archfleet.services.desired import FleetContext

DEFAULT_FLEET_FILE = "fleet.yaml"


def default_fleet_path() -> Path:
    """``-f`` wins; else ``$ARCHFLEET_FLEET``; else ``fleet.yaml`` in the current directory."""
    return Path(os.environ.get("ARCHFLEET_FLEET", DEFAULT_FLEET_FILE))


@dataclass
class Fleet:
    path: Path
    registry: RegistrySpec
    inventory: str | None = None
    images: dict[str, ImageSpec] = field(default_factory=dict)
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    spot_fleets: dict[str, SpotFleetSpec] = field(default_factory=dict)
    laptop: LaptopProfile | None = None
    registries: dict[str, RegistryEntry] = field(default_factory=dict)  # `registries:`
    rollout: RolloutSpec = field(default_factory=RolloutSpec)  # the fleet-wide default (`rollout:`)
    timeouts: TimeoutsSpec = field(default_factory=TimeoutsSpec)  # `timeouts:`
    releases_retain: int = 3  # `releases: {retain: N}`: releases each host keeps (archfleet.sync.releases)
    parallel: int | None = None  # `parallel:` hosts at once (None: fit the open-file limit, archfleet.sync.scope)
    disk: DiskSpec = field(default_factory=DiskSpec)  # `disk:` when verify warns of a filling disk
    ssh: SshSpec = field(default_factory=SshSpec)  # `ssh:` (applied to `hosts` at load time)
    builders: dict[Platform, BuilderChoice] = field(default_factory=dict)  # `builders:` (archfleet.fleet.builders)
    # Worked out once at load time, from the inventory the file names (None without `inventory:`):
    # the hosts, groups and data as pyinfra reads them (pyinfra's own Inventory for one that names a connector)
    hosts: HostInventory | Inventory | None = None
    placement: Placement | None = None
    services_declared: bool = False  # the file has a `services:` section (an empty one counts)
    context: FleetContext | None = None  # template variables and secret values (archfleet.services.desired)

    @property
    def base_dir(self) -> Path:
        """Relative paths in the fleet file are relative to the file's folder."""
        return self.path.resolve().parent

    @property
    def inventory_path(self) -> Path | None:
        return self.base_dir / self.inventory if self.inventory else None


def load_fleet(path: Path | None = None) -> Fleet:
    """Load and validate the whole fleet file, offline: every section, the inventory it names, where each
    service runs (groups, hosts, ports), and every template and environment value rendered for each of its hosts.
    Any error is one line, ``FILE:LINE: key.path: reason`` (exit 2); nothing is contacted."""
    path = path or default_fleet_path()
    top = Mapping(load_yaml(path))
    base_dir = path.resolve().parent
    fleet = Fleet(path=path, registry=parse_registry(top, base_dir))
    fleet.inventory = top.string("inventory", None)
    fleet.rollout = parse_rollout(top.mapping("rollout"))
    fleet.timeouts = parse_timeouts(top.mapping("timeouts"))
    fleet.releases_retain = parse_releases(top.mapping("releases"))
    fleet.parallel = top.integer("parallel", None, minimum=1)
    fleet.disk = parse_disk(top.mapping("disk"))

    # Each section's parser lives in its own module; they are imported here so that a file that uses
    # only one section still has every key checked.
    from archfleet.fleet import builders, images, laptop, registries, services, spot

    fleet.registries = registries.parse_registries(top.mapping("registries"), fleet)
    fleet.images = images.parse_images(top.mapping("images"), fleet)
    services_node = top.get("services")
    fleet.services_declared = services_node is not None
    fleet.services = services.parse_services(top.mapping("services"), fleet)
    fleet.spot_fleets = spot.parse_spot_fleets(top.mapping("spot_fleets"), fleet)
    fleet.laptop = laptop.parse_laptop(top.mapping("laptop"), fleet)
    fleet.ssh = parse_ssh(top.mapping("ssh"), fleet)
    fleet.builders = builders.parse_builders(top.mapping("builders"))
    top.done()
    place_services(fleet, top)
    builders.check_builder_hosts(fleet)
    return fleet


def place_services(fleet: Fleet, top: Mapping) -> None:
    """Load the inventory, place every service on its hosts and render each for each host (a dry render)."""
    inventory_node = top.items.get("inventory")
    if fleet.inventory is None or inventory_node is None:
        if fleet.services:
            top.fail("services", "services need `inventory:`, the pyinfra inventory file they run on")
        for (kind, _), node in fleet.ssh.nodes.items():
            node.fail(f"ssh.{kind} needs `inventory:`, the pyinfra inventory file whose {kind} it names")
        return
    from archfleet.inventory_file import group_names, load_inventory
    from archfleet.services.desired import check_renders

    fleet.hosts = load_inventory(fleet.base_dir / fleet.inventory, f"{inventory_node.where}: inventory")
    groups = group_names(fleet.hosts)
    check_inventory(fleet.ssh, groups)
    apply_ssh(fleet.ssh, fleet.hosts, groups)  # every command and deploy connects with the same data
    fleet.placement = place(fleet.services, groups)
    check_renders(fleet)


def service_reference(fleet: Fleet, spec: ServiceSpec) -> str:
    """The full multi-arch tag a service runs: a declared image's published tag in the fleet's registry, else the
    reference as Docker reads it (``redis:7`` is ``docker.io/library/redis:7``, ``ghcr.io/acme/web:1.2``)."""
    image = fleet.images.get(spec.image)
    if image is not None:
        address = fleet.registry.resolve().address
        assert address is not None  # parse_registry requires it unless `lab: true`, which resolve reads
        return str(parse(image.ref(address)))
    return str(parse(spec.image))


_LOADED: dict[Path, Fleet] = {}


def fleet_for_deploy(path: str | Path | None = None) -> Fleet:
    """The fleet file for a pyinfra deploy: loaded once per process (deploy code runs once per host)."""
    resolved = Path(path) if path else default_fleet_path()
    key = resolved.resolve()
    if key not in _LOADED:
        _LOADED[key] = load_fleet(resolved)
    return _LOADED[key]
