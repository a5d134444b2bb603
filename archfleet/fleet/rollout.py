"""The ``rollout:`` and ``timeouts:`` settings of the fleet file.

    rollout:              # fleet-wide default; a service's own `rollout:` overrides the keys it names
      canary: 1           # hosts moved first, alone (0: no canary)
      batch: "50%"        # then batches of N hosts, or "P%" of the service's hosts (default "100%": all the rest)
      pause: 0            # seconds between batches
      rollback: true      # a failed host rolls back the hosts already moved in this rollout
    timeouts:             # seconds, each more than 0
      connect: 30         # SSH connect (TCP, key exchange and login)
      facts: 60           # reading a host's state
      pull: 600           # pulling an image on a host
      start: 60           # a new container reaching "running"
      health: 300         # its health check passing
      build: 3600         # one platform's local image build
      push: 1800          # pushing an image
      run: 7200           # the whole run on one host
    releases:
      retain: 3           # releases each host keeps, with their images and file versions (archfleet rollback)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace

from archfleet.schema import Mapping

PERCENT_PATTERN = re.compile(r"^\s*(\d{1,3})\s*%\s*$")


@dataclass(frozen=True)
class RolloutSpec:
    canary: int = 1
    batch: int | None = None  # hosts per batch, or
    batch_percent: int | None = None  # percent of the service's hosts per batch (None and None: 100%)
    pause: float = 0
    rollback: bool = True

    def batch_size(self, host_count: int) -> int:
        """Hosts per batch after the canary, for a service on ``host_count`` hosts (at least 1)."""
        if self.batch is not None:
            return max(1, self.batch)
        percent = 100 if self.batch_percent is None else self.batch_percent
        return max(1, math.ceil(host_count * percent / 100))

    @property
    def batch_text(self) -> str:
        return str(self.batch) if self.batch is not None else f"{self.batch_percent or 100}%"


@dataclass(frozen=True)
class TimeoutsSpec:
    connect: float = 30
    facts: float = 60
    pull: float = 600
    start: float = 60
    health: float = 300
    build: float = 3600
    push: float = 1800
    run: float = 7200


def _batch(section: Mapping) -> tuple[int | None, int | None] | None:
    """``batch:`` as (count, percent), or None when not set."""
    node = section.get("batch")
    if node is None or node.value is None:
        return None
    if isinstance(node.value, int) and not isinstance(node.value, bool):
        count = section.integer("batch", minimum=1)
        return count, None
    match = PERCENT_PATTERN.match(node.as_text() or "") if node.is_scalar else None
    if not match:
        node.fail(f"expected a host count (1 or more) or a percentage like \"50%\", got {node.kind}")
    percent = int(match[1])
    if not 1 <= percent <= 100:
        node.fail(f"a percentage is 1% to 100%, got {percent}%")
    return None, percent


def parse_rollout(section: Mapping | None, default: RolloutSpec | None = None) -> RolloutSpec:
    """A ``rollout:`` mapping; keys it does not name come from ``default`` (the fleet's, for a service)."""
    base = default or RolloutSpec()
    if section is None:
        return base
    canary = section.integer("canary", base.canary, minimum=0)
    batch = _batch(section)
    pause = section.number("pause", base.pause, minimum=0)
    rollback = section.boolean("rollback", base.rollback)
    section.done()
    spec = replace(base, canary=canary, pause=float(pause), rollback=rollback)
    if batch is not None:
        spec = replace(spec, batch=batch[0], batch_percent=batch[1])
    return spec


def parse_timeouts(section: Mapping | None) -> TimeoutsSpec:
    if section is None:
        return TimeoutsSpec()
    defaults = TimeoutsSpec()
    values = {f.name: float(section.number(f.name, getattr(defaults, f.name), positive=True))
              for f in fields(TimeoutsSpec)}
    section.done()
    return TimeoutsSpec(**values)


DEFAULT_RETAIN = 3


def parse_releases(section: Mapping | None) -> int:
    """``releases: {retain: N}``: how many releases each host keeps (their images and file versions)."""
    if section is None:
        return DEFAULT_RETAIN
    retain = section.integer("retain", DEFAULT_RETAIN, minimum=1)
    section.done()
    return int(retain)
