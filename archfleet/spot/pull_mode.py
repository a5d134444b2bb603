"""Spot fleets whose instances converge themselves (``converge: pull``, docs/spot.md): what the controller's sync
does for them. It does not reach them: their instances (``inventories/ec2.py``'s hosts of the fleet, host data
``ec2_fleet``) are left out of its reads and rollout, said in one line. After a rollout that stood on every host it
reached, it publishes the fleet's release (``archfleet.spot.release.publish``: ``release/current`` last), but only
when every service of that release ran, by the same digest, on a host the sync reached and that stood: those hosts
are the pull fleet's canary. The instances' agents (``tasks/pull_agent_commands.py``) follow ``release/current``.
``archfleet verify`` does not reach them either: it judges each from its tags (``pull_rows``).
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
    from archfleet.services.proof import ProofRow
    from archfleet.spot.discovery import InstanceRow

Say = Callable[[str], None]
STOOD = ("updated", "unchanged")  # archfleet.sync.report's words (spot/ sits below sync/)
PULL_ROW = "(pull agent)"  # verify's row of a pull-mode instance, judged from its tags (not reached over SSH)


def spot_fleet_of_host(fleet: Fleet, host: str) -> SpotFleetSpec | None:
    """The spot fleet a host of the inventory is an instance of (``inventories/ec2.py``'s host data ``ec2_fleet``)."""
    entry = fleet.hosts.get_host(host, None) if fleet.hosts is not None else None
    name = entry.data.get("ec2_fleet") if entry is not None else None
    return fleet.spot_fleets.get(str(name)) if name else None


def pull_fleet_of_host(fleet: Fleet, host: str) -> SpotFleetSpec | None:
    """The ``converge: pull`` spot fleet a host of the inventory is an instance of, if any."""
    spec = spot_fleet_of_host(fleet, host)
    return spec if spec is not None and spec.pulls else None


def split_pull_hosts(fleet: Fleet, names: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """``names`` the controller reaches over SSH, and the instances of pull-mode fleets by fleet; no AWS call."""
    pulling: dict[str, list[str]] = {}
    kept = []
    for host in names:
        spec = pull_fleet_of_host(fleet, host)
        if spec is None:
            kept.append(host)
        else:
            pulling.setdefault(spec.name, []).append(host)
    return kept, pulling


def hosts_the_sync_reaches(fleet: Fleet, names: Sequence[str], say: Say) -> list[str]:
    """``names`` without the instances of pull-mode fleets (one line per such fleet); no AWS call."""
    kept, pulling = split_pull_hosts(fleet, names)
    for name, hosts in sorted(pulling.items()):
        say(f"sync: spot fleet {name}: {len(hosts)} pull-mode host(s) converge themselves to its current release "
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
            published = any(line.startswith("publish ") for line in lines)  # then release/current is run.id
            say(f"sync: spot fleet {spec.name}: its pull-mode hosts converge themselves to release "
                f"{run.id if published else current.id}")
        except ArchfleetError as error:
            failure = f"spot fleet {spec.name}: its pull-mode hosts' release was not published: {error}"
            say(f"sync: {failure.replace(': ', ': FAILED: ', 1)}")
            report.failures.append(failure)  # no host of the sync to mark: the sync fails all the same


# --- verify ------------------------------------------------------------------------------------------------------


def pull_rows(fleet: Fleet, pulling: Mapping[str, Sequence[str]]) -> list[ProofRow]:
    """``archfleet verify``'s row per instance of a pull-mode fleet (``pulling``: fleet -> its hosts in scope, from
    ``split_pull_hosts``), judged from its tags: per fleet one EC2 describe of its instances and one read of its
    ``release/current``, no call per host and no SSH. A fleet that cannot be read fails each of its rows."""
    from archfleet.services.proof import FAIL, ProofRow
    from archfleet.spot.connection import connect, ssm_client
    from archfleet.spot.discovery import tagged_instances
    from archfleet.spot.release import current_release

    rows: list[ProofRow] = []
    for name, hosts in sorted(pulling.items()):
        spec = fleet.spot_fleets[name]
        try:
            ec2 = connect(spec.region, spec.where)
            instances = {row.instance_id: row for row in tagged_instances(ec2, name)}
            current = current_release(ssm_client(ec2, f"spot fleet {name}: its release"), spec)
        except ArchfleetError as error:
            rows += [ProofRow(host, "?", PULL_ROW, "-", "-", "-", "-", FAIL,
                              f"cannot read spot fleet {name}'s instances and release: {one_line(str(error))}")
                     for host in hosts]
            continue
        for host in sorted(hosts):
            entry = fleet.hosts.get_host(host, None) if fleet.hosts is not None else None
            instance_id = str(entry.data.get("ec2_instance_id") or host) if entry is not None else host
            rows.append(judge_pull_instance(host, instances.get(instance_id), name,
                                            current.id if current is not None else None))
    return rows


def judge_pull_instance(host: str, instance: InstanceRow | None, fleet_name: str, current: str | None) -> ProofRow:
    """ok when the instance runs its fleet's current release (tag ``archfleet:release``) and its agent's last
    converge (tag ``archfleet:converge``: ``ID TIME ok`` or ``ID TIME failed: REASON``) is ok; else FAIL, why."""
    from archfleet.services.proof import FAIL, OK, ProofRow
    from archfleet.spot.user_data import RELEASE_TAG
    from archfleet.tasks.pull_agent_commands import CONVERGE_TAG

    if instance is None:
        return ProofRow(host, "?", PULL_ROW, "-", "-", "-", "-", FAIL,
                        f"not a live instance of spot fleet {fleet_name} (gone since the inventory was read?)")
    platform = f"linux/{instance.arch}"
    problems = []
    if instance.state != "running":
        problems.append(f"the instance is {instance.state}")
    running = one_line(instance.tags.get(RELEASE_TAG, ""))
    if current is None:
        problems.append(f"spot fleet {fleet_name} has no release published: `archfleet spot up {fleet_name}` "
                        "publishes one")
    elif running != current:
        problems.append(f"runs {f'release {running}' if running else 'no recorded release'}, not spot fleet "
                        f"{fleet_name}'s current {current}")
    converge = one_line(instance.tags.get(CONVERGE_TAG, ""))
    release_id, _, rest = converge.partition(" ")
    when, _, outcome = rest.partition(" ")
    if not converge:
        problems.append("no converge recorded yet")
    elif outcome.startswith("failed"):
        reason = outcome.removeprefix("failed").removeprefix(":").strip() or "no reason recorded"
        problems.append(f"last converge failed: {reason} (release {release_id}, {when})")
    elif outcome != "ok":
        problems.append(f"unreadable converge record {converge!r}")
    return ProofRow(host, platform, PULL_ROW, instance.state, "-", "-", "-", FAIL if problems else OK,
                    "; ".join(problems))


def one_line(text: str) -> str:
    """A tag's value (anyone who may tag the instance writes it) or an error, on one line."""
    return " ".join(text.split())
