"""OCI platform names (``linux/amd64``, ``linux/arm64``, ``linux/arm/v7``, ``darwin/arm64``): pure functions.

`uname -m` and Docker disagree on names (``aarch64`` vs ``arm64``, ``x86_64`` vs ``amd64``); everything in
archfleet compares platforms in the OCI form produced here.
"""

from __future__ import annotations

from typing import NamedTuple

# uname -m (and Docker's Server.Arch, and Go's GOARCH) -> (OCI architecture, variant)
MACHINE_TO_OCI: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "x64": ("amd64", None),
    "i386": ("386", None),
    "i686": ("386", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armv8l": ("arm", "v7"),  # 32-bit userland on a 64-bit CPU
    "armv7l": ("arm", "v7"),
    "armhf": ("arm", "v7"),
    "arm": ("arm", None),  # GOARCH, as Docker reports it: the variant is not known
    "armv6l": ("arm", "v6"),
    "armel": ("arm", "v6"),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
}

# OCI architecture -> what `uname -m` prints inside a container of that platform
OCI_TO_MACHINE = {"amd64": "x86_64", "arm64": "aarch64", "arm": "armv7l", "386": "i686",
                  "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


class Platform(NamedTuple):
    """Immutable and ordered by its fields. A NamedTuple, not a dataclass: the no-op sync's fast path parses each
    host's platform, and ``dataclasses`` (with ``inspect``) costs more to import than that path spends reading."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @property
    def machine(self) -> str:
        """What `uname -m` says on this platform."""
        return OCI_TO_MACHINE.get(self.architecture, self.architecture)


class UnknownPlatform(ValueError):
    pass


def from_uname(kernel: str, machine: str) -> Platform:
    """``("Linux", "aarch64")`` -> ``linux/arm64``; ``("Darwin", "arm64")`` -> ``darwin/arm64``."""
    try:
        architecture, variant = MACHINE_TO_OCI[machine.strip().lower()]
    except KeyError:
        raise UnknownPlatform(f"unknown machine architecture {machine!r}") from None
    return Platform(kernel.strip().lower(), architecture, variant)


def parse(text: str) -> Platform:
    """``linux/arm64``, ``linux/arm64/v8``, ``linux/aarch64`` and ``linux/arm/v7`` -> Platform.

    ``arm64/v8`` is the same platform as ``arm64`` (v8 is the only arm64 variant in use), so it is dropped.
    """
    parts = text.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UnknownPlatform(f"{text!r} is not an OS/architecture[/variant] platform")
    os_name, machine = parts[0], parts[1]
    try:
        architecture, default_variant = MACHINE_TO_OCI[machine]
    except KeyError:
        raise UnknownPlatform(f"{text!r}: unknown architecture {machine!r}") from None
    variant = parts[2] if len(parts) == 3 else default_variant
    if architecture == "arm64" and variant == "v8":
        variant = None
    return Platform(os_name, architecture, variant)


def matches(wanted: Platform, offered: Platform) -> bool:
    """Does an image for ``offered`` serve a host of platform ``wanted``? (arm without variant matches any arm.)"""
    if (wanted.os, wanted.architecture) != (offered.os, offered.architecture):
        return False
    return wanted.variant is None or offered.variant is None or wanted.variant == offered.variant
