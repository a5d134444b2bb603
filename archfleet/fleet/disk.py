"""The ``disk:`` setting of the fleet file: when ``archfleet verify`` warns that a host's disk is filling.

    disk:                     # the filesystem of Docker's data root, on each host
      min_free_percent: 10    # warn when less than 10% of it is free,
      min_free_gib: 2         # or less than 2 GiB (whichever is hit first)

A warning, not a failure: verify still exits 0 (it proves what runs; a disk with room for one more pull runs fine).
"""

from __future__ import annotations

from dataclasses import dataclass

from archfleet.facts.service_reads import DiskSpace
from archfleet.schema import Mapping

KIB_PER_GIB = 1024 * 1024


@dataclass(frozen=True)
class DiskSpec:
    min_free_percent: float = 10
    min_free_gib: float = 2

    def warning(self, disk: DiskSpace) -> str:
        """Why ``disk`` is short of room, in a few words ("" when it is not)."""
        free_gib = disk["available_kib"] / KIB_PER_GIB
        percent = free_percent(disk)
        if percent < self.min_free_percent:
            return f"{percent:.0f}% free, under {self.min_free_percent:g}%"
        if free_gib < self.min_free_gib:
            return f"{free_gib:.1f} GiB free, under {self.min_free_gib:g} GiB"
        return ""


def free_percent(disk: DiskSpace) -> float:
    """The share of the whole filesystem that is still available (df's "Available" of its size)."""
    return 100 * disk["available_kib"] / disk["size_kib"] if disk["size_kib"] else 0.0


def parse_disk(section: Mapping | None) -> DiskSpec:
    if section is None:
        return DiskSpec()
    defaults = DiskSpec()
    percent = section.number("min_free_percent", defaults.min_free_percent, minimum=0, maximum=100)
    gib = section.number("min_free_gib", defaults.min_free_gib, minimum=0)
    section.done()
    return DiskSpec(float(percent), float(gib))
