"""What a sync did, per host: one summary line each (or one JSON document), and a total."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

UNCHANGED, WOULD_CHANGE, UPDATED = "unchanged", "would_change", "updated"
ROLLED_BACK, FAILED, NOT_REACHED = "rolled_back", "failed", "not_reached"


@dataclass
class ServiceResult:
    action: str  # create, recreate, start, restore, cleanup, remove, none
    reason: str
    result: str  # planned, updated, unchanged, failed, rolled_back, not_reached, kept
    detail: str = ""


@dataclass
class HostReport:
    host: str
    platform: str = "?"
    status: str = UNCHANGED
    reason: str = ""  # for failed / rolled_back / not_reached
    services: dict[str, ServiceResult] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)  # undeclared services kept (no --prune)

    def services_with(self, *results: str) -> list[str]:
        return [name for name, r in self.services.items() if r.result in results]

    def line(self) -> str:
        kept = f"; kept undeclared: {', '.join(self.orphans)} (sync --prune removes)" if self.orphans else ""
        changes = ", ".join(f"{name} ({r.action})" for name, r in self.services.items() if r.action != "none")
        if self.status == FAILED:
            failed = self.services_with(FAILED)
            return f"FAILED: {failed[0]}: {self.reason}" if failed else f"FAILED: {self.reason}"
        if self.status == ROLLED_BACK:
            return f"rolled back: {', '.join(self.services_with(ROLLED_BACK))} ({self.reason}){kept}"
        if self.status == NOT_REACHED:
            return f"not reached: {', '.join(self.services_with(NOT_REACHED))} ({self.reason}){kept}"
        if self.status == WOULD_CHANGE:
            return f"would change: {changes}{kept}"
        if self.status == UPDATED:
            return f"updated: {changes}{kept}"
        return f"no changes{kept}"

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status, "reason": self.reason, "platform": self.platform, "orphans": self.orphans,
            "services": {name: vars(result) for name, result in self.services.items()},
        }


@dataclass
class SyncReport:
    dry: bool
    hosts: dict[str, HostReport] = field(default_factory=dict)
    batches: list[dict[str, Any]] = field(default_factory=list)  # {"service", "batch", "hosts"}
    stopped_at: str | None = None  # the host whose failure stopped the rollout
    failures: list[str] = field(default_factory=list)  # what failed that is no one host's (a release's publication)

    def host(self, name: str) -> HostReport:
        return self.hosts.setdefault(name, HostReport(name))

    def count(self, status: str) -> int:
        return sum(1 for h in self.hosts.values() if h.status == status)

    @property
    def ok(self) -> bool:
        return not self.failures and not any(h.status in (FAILED, ROLLED_BACK, NOT_REACHED)
                                             for h in self.hosts.values())

    def lines(self, title: str = "sync") -> list[str]:
        lines = [f"{title}\t{name}\t{self.hosts[name].line()}" for name in sorted(self.hosts)]
        verb = "would change" if self.dry else "updated"
        changed = self.count(WOULD_CHANGE if self.dry else UPDATED)
        lines.append(
            f"{title}: {len(self.hosts)} host(s): {changed} {verb}, {self.count(ROLLED_BACK)} rolled back, "
            f"{self.count(FAILED)} failed, {self.count(NOT_REACHED)} not reached, {self.count(UNCHANGED)} unchanged"
        )
        lines += [f"{title}: FAILED: {failure}" for failure in self.failures]
        return lines

    def as_json(self) -> str:
        return json.dumps({
            "dry": self.dry, "ok": self.ok, "stopped_at": self.stopped_at, "batches": self.batches,
            "failures": self.failures,
            "hosts": {name: self.hosts[name].as_json() for name in sorted(self.hosts)},
        }, indent=2)


def sync_title(services: int, fleet: str, inventory: str, dry: bool) -> str:
    """The first progress line of a sync."""
    return f"sync: {services} service(s) from {fleet} on {inventory}{' (dry run)' if dry else ''}"
