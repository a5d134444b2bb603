"""The ``builders:`` section of the fleet file: which engine builds each platform's images.

    builders:
      linux/arm64: arm64-build-1     # a host of the inventory: its Docker engine, over SSH (it must be arm64)
      linux/amd64: local             # this machine's engine (natively if it is amd64, else emulated with QEMU)

Without the section, every inventory host whose engine answers may build (the first of each platform's
architecture), else the local engine. With it, only the hosts it names are asked (no other host of the fleet is
contacted by `images build`), and a platform it does not name builds on the local engine. ``images build`` prints
the choice for every platform before it builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archfleet.platforms import Platform, UnknownPlatform
from archfleet.platforms import parse as parse_platform
from archfleet.schema import Mapping, Node

if TYPE_CHECKING:
    from archfleet.fleet import Fleet

LOCAL_ENGINE = "local"


@dataclass(frozen=True)
class BuilderChoice:
    platform: Platform
    builder: str  # a host of the inventory, or LOCAL_ENGINE
    node: Node

    @property
    def local(self) -> bool:
        return self.builder == LOCAL_ENGINE


def parse_builders(section: Mapping | None) -> dict[Platform, BuilderChoice]:
    """Each named platform's builder, in file order (hosts are checked against the inventory by
    :func:`check_builder_hosts`, once it is loaded)."""
    if section is None:
        return {}
    choices: dict[Platform, BuilderChoice] = {}
    for key, node in section.entries():
        try:
            platform = parse_platform(key)
        except UnknownPlatform as error:
            node.fail(f"{key!r} is not a platform: {error}")
        if platform in choices:
            node.fail(f"{platform} is named twice")
        if not isinstance(node.value, str) or not node.value.strip():
            node.fail(f"expected a host of the inventory or {LOCAL_ENGINE!r}, got {node.kind}")
        choices[platform] = BuilderChoice(platform, node.value.strip(), node)
    return choices


def check_builder_hosts(fleet: Fleet) -> None:
    """Every builder the section names is ``local`` or a host of the fleet's inventory."""
    names = {host.name for host in fleet.hosts} if fleet.hosts is not None else set()
    for choice in fleet.builders.values():
        if not choice.local and choice.builder not in names:
            where = f"a host of {fleet.inventory}" if fleet.inventory else "a host (the file names no inventory)"
            choice.node.fail(f"{choice.builder!r} is not {where}, nor {LOCAL_ENGINE!r}")
