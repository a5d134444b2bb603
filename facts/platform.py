"""The host's OCI platform, from one `uname -sm`."""

from __future__ import annotations

from pyinfra.api import FactBase

from archfleet.platforms import Platform, UnknownPlatform, from_uname


class HostPlatform(FactBase[str | None]):
    """
    The host's OCI platform: ``linux/amd64``, ``linux/arm64``, ``linux/arm/v7``, ``darwin/arm64``...
    ``None`` when `uname` names an architecture archfleet does not know.
    """

    def command(self) -> str:
        return "uname -sm"

    def process(self, output: list[str]) -> str | None:
        platform = parse_uname(output)
        return str(platform) if platform else None


def parse_uname(output: list[str]) -> Platform | None:
    words = " ".join(output).split()
    if len(words) != 2:
        return None
    try:
        return from_uname(words[0], words[1])
    except UnknownPlatform:
        return None
