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
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archfleet.fleet.registry import RegistrySpec, parse_registry
from archfleet.schema import Mapping, load_yaml

DEFAULT_FLEET_FILE = "fleet.yaml"


def default_fleet_path() -> Path:
    """``-f`` wins; else ``$ARCHFLEET_FLEET``; else ``fleet.yaml`` in the current directory."""
    return Path(os.environ.get("ARCHFLEET_FLEET", DEFAULT_FLEET_FILE))


@dataclass
class Fleet:
    path: Path
    registry: RegistrySpec
    inventory: str | None = None
    images: dict[str, Any] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)
    spot_fleets: dict[str, Any] = field(default_factory=dict)
    laptop: Any = None

    @property
    def base_dir(self) -> Path:
        """Relative paths in the fleet file are relative to the file's folder."""
        return self.path.resolve().parent


def load_fleet(path: Path | None = None) -> Fleet:
    path = path or default_fleet_path()
    top = Mapping(load_yaml(path))
    base_dir = path.resolve().parent
    fleet = Fleet(path=path, registry=parse_registry(top.mapping("registry"), base_dir))
    fleet.inventory = top.string("inventory", None)

    # Each section's parser lives in its own module; they are imported here so that a file that uses
    # only one section still has every key checked.
    from archfleet.fleet import images, laptop, services, spot

    fleet.images = images.parse_images(top.mapping("images"), fleet)
    fleet.services = services.parse_services(top.mapping("services"), fleet)
    fleet.spot_fleets = spot.parse_spot_fleets(top.mapping("spot_fleets"), fleet)
    fleet.laptop = laptop.parse_laptop(top.mapping("laptop"), fleet)
    top.done()
    return fleet


_LOADED: dict[Path, Fleet] = {}


def fleet_for_deploy(path: str | Path | None = None) -> Fleet:
    """The fleet file for a pyinfra deploy: loaded once per process (deploy code runs once per host)."""
    resolved = Path(path) if path else default_fleet_path()
    key = resolved.resolve()
    if key not in _LOADED:
        _LOADED[key] = load_fleet(resolved)
    return _LOADED[key]
