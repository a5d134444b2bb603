"""Spot fleets whose instances converge themselves (``converge: pull``, docs/spot.md): what the controller's sync
does for them. It does not reach them: their instances (``inventories/ec2.py``'s hosts of the fleet, host data
``ec2_fleet``) are left out of its reads and rollout, said in one line. After a rollout that stood on every host it
reached, it publishes the fleet's release (``archfleet.spot.release.publish``: ``release/current`` last), but only
when every service of that release ran, by the same digest, on a host the sync reached and that stood: those hosts
are the pull fleet's canary. The instances' agents (``tasks/pull_agent_commands.py``) follow ``release/current``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from archfleet.errors import ArchfleetError
from archfleet.fleet import Fleet
from archfleet.fleet.spot import SpotFleetSpec

if TYPE_CHECKING:
    from archfleet.images.verify import VerifyReport
    from archfleet.operator import RunInfo

Say = Callable[[str], None]
STOOD = ("updated", "unchanged")  # archfleet.sync.report's words (spot/ sits below sync/)


def pull_fleet_of_host(fleet: Fleet, host: str) -> SpotFleetSpec | None:
    """The ``converge: pull`` spot fleet a host of the inventory is an instance of, if any."""
    entry = fleet.hosts.get_host(host, None) if fleet.hosts is not None else None
    name = entry.data.get("ec2_fleet") if entry is not None else None
    spec = fleet.spot_fleets.get(str(name)) if name else None
    return spec if spec is not None and spec.pulls else None


def hosts_the_sync_reaches(fleet: Fleet, names: Sequence[str], say: Say) -> list[str]:
    """``names`` without the instances of pull-mode fleets (one line per such fleet); no AWS call."""
    left: dict[str, int] = {}
    kept = []
    for host in names:
        spec = pull_fleet_of_host(fleet, host)
        if spec is None:
            kept.append(host)
        else:
            left[spec.name] = left.get(spec.name, 0) + 1
    for name, count in sorted(left.items()):
        say(f"sync: spot fleet {name}: {count} pull-mode host(s) converge themselves to its current release "
            "(not reached from here)")
    return kept


def publish_pull_fleets(fleet: Fleet, plans: Mapping[str, Any], report: Any,
                        reports: dict[str, VerifyReport] | None, run: RunInfo, say: Say) -> None:
    """After a rollout: each pull-mode fleet's release, rendered from the fleet file, published when the sync stood
    everywhere and every image of it runs on a host the sync reached (its canary); else one line why not."""
    pulling = sorted((s for s in fleet.spot_fleets.values() if s.pulls), key=lambda s: s.name)
    if not pulling or not any(plan.changed for plan in plans.values()):
        return
    if not report.ok or any(report.hosts[host].status not in STOOD for host in plans if host in report.hosts):
        for spec in pulling:
            say(f"sync: spot fleet {spec.name}: no release published for its pull-mode hosts (the sync failed or "
                "rolled back somewhere: the canary did not pass)")
        return
    stood = {step.desired.image for plan in plans.values() for step in (*plan.steps, *plan.unchanged)
             if step.desired is not None}
    from archfleet.spot.connection import connect, ssm_client
    from archfleet.spot.joining import joining_host
    from archfleet.spot.release import current_release, publish

    for spec in pulling:
        try:
            ec2 = connect(spec.region, spec.where)
            current = current_release(ssm_client(ec2, f"spot fleet {spec.name}: its release"), spec)
            if current is None:
                say(f"sync: spot fleet {spec.name}: no release published yet: `archfleet spot up {spec.name}` "
                    "publishes one")
                continue
            joining = [joining_host(fleet, spec, arch, ec2, reports) for arch in sorted(current.arches)]
            untried = sorted({f"{c.service} ({c.image.rsplit('@', 1)[-1][:19]})"
                              for host in joining for c in host.containers if c.image not in stood})
            if untried:
                say(f"sync: spot fleet {spec.name}: no release published for its pull-mode hosts: "
                    f"{', '.join(untried)} ran on no host this sync reached (no canary); they stay on {current.id}")
                continue
            lines = publish(ec2, spec, joining, run)
            for line in lines:
                say(f"sync: spot fleet {spec.name}: {line}")
            now = current_release(ssm_client(ec2, f"spot fleet {spec.name}: its release"), spec)
            say(f"sync: spot fleet {spec.name}: its pull-mode hosts converge themselves to release "
                f"{now.id if now else current.id}")
        except ArchfleetError as error:
            failure = f"spot fleet {spec.name}: its pull-mode hosts' release was not published: {error}"
            say(f"sync: {failure.replace(': ', ': FAILED: ', 1)}")
            report.failures.append(failure)  # no host of the sync to mark: the sync fails all the same
