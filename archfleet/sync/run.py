"""`archfleet sync` end to end: read every host's state, plan, then (only when a host must change) roll the changes
out safely with archfleet.sync.rollout. The steps:

1. **Read** (one command per host, in parallel, time-bounded, archfleet.sync.read): a host that cannot be reached
   fails alone. Hosts OpenSSH can reach are read over plain ``ssh`` processes, and every tag is read from the
   registry while those run (no thread: the processes are the parallelism); pyinfra and gevent are imported only
   when a host must change, so a no-op sync is one SSH command per host.
2. **Plan** (archfleet.sync.pipeline): the pre-flight pins every tag once; a tag without a verified image for a
   host's platform stops everything here, before any host is touched. ``--dry`` stops here too.
3. **Lock** (archfleet.sync.lock, docs/lock.md): the hosts that must change, all or nothing, each lock's command
   reading the host's state again; a host changed since the first read is planned again. Released in the
   finalize's own command, else at the end.
4. **Roll out** (archfleet.sync.rollout): pull, switch behind a canary and in batches, roll back, finalize.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from archfleet.errors import InputError
from archfleet.facts.service_reads import SERVICES_STATE_COMMAND, ServicesStateValue, parse_services_state
from archfleet.fleet import Fleet
from archfleet.operator import RunInfo
from archfleet.services.fleet_secrets import settle_fleet_secrets
from archfleet.spot.host_keys import prove_new_host_keys
from archfleet.sync.outcome import Outcome, StepFailed
from archfleet.sync.read import start_reading
from archfleet.sync.releases import ReleaseContext, fleet_sha256
from archfleet.sync.report import FAILED, UNCHANGED, UPDATED, WOULD_CHANGE, ServiceResult, SyncReport
from archfleet.sync.scope import hosts_in_scope, parallel_of, placement_of, timeouts_of

if TYPE_CHECKING:
    from archfleet.images.verify import VerifyReport
    from archfleet.sync.hosts import HostSession
    from archfleet.sync.lock import HeldLocks
    from archfleet.sync.pipeline import Override
    from archfleet.sync.plan import HostPlan

Say = Callable[[str], None]


def services_state_fact() -> type:
    from archfleet.facts.services import ServicesState

    return ServicesState


def start_reading_states(names: list[str], fleet: Fleet, say: Say, parallel: int | None = None,
                         deadline: float | None = None) -> Callable[[], dict[str, ServicesStateValue | Outcome]]:
    """The ServicesState fact of every host, started now (one command each, ``parallel`` hosts at a time,
    archfleet.sync.read); ``deadline``: the whole sync's (monotonic)."""
    timeouts = timeouts_of(fleet)
    say(f"sync: reading the state of {len(names)} host(s)")
    prove_new_host_keys(fleet.hosts, names, say)  # a new EC2 instance's key, from its console output, before ssh
    return start_reading(fleet.hosts, names, what="ServicesState", command=SERVICES_STATE_COMMAND,
                         parse=parse_services_state, fact=services_state_fact, connect_timeout=int(timeouts.connect),
                         bound=timeouts.connect + timeouts.facts, say=say, parallel=parallel, deadline=deadline,
                         deadline_reason=f"the whole sync timed out after {timeouts.run:g} s")


def readable_states(values: dict[str, ServicesStateValue | Outcome], fleet: Fleet,
                    report: SyncReport) -> dict[str, ServicesStateValue]:
    """The states that can be planned on; unreadable hosts (and hosts with services but no engine or no known
    platform) are FAILED in the report."""
    placement = placement_of(fleet)
    states: dict[str, ServicesStateValue] = {}
    for host, value in sorted(values.items()):
        entry = report.host(host)
        if isinstance(value, Outcome):
            entry.status, entry.reason = FAILED, value.reason
            continue
        entry.platform = value.get("platform") or "?"
        if placement.services_on(host) and not value["engine_running"]:
            entry.status, entry.reason = FAILED, "the Docker engine does not answer (run the host bootstrap first)"
            continue
        if placement.services_on(host) and not value.get("platform"):
            entry.status, entry.reason = FAILED, f"unknown platform (uname -m: {value.get('machine')})"
            continue
        states[host] = value
    return states


def read_tags(fleet: Fleet, services: list[str]) -> dict[str, VerifyReport]:
    """Every placed service's tag, read from its registry once for this sync
    (archfleet.services.preflight.prefetch_reports)."""
    from archfleet.services.preflight import prefetch_reports  # the registry client: imported off the main path

    return prefetch_reports(fleet, services)


def record_plan(report: SyncReport, plan: HostPlan, dry: bool, say: Say) -> None:
    """A host's plan in the report (what it will do, what stays, what is kept undeclared), each step said."""
    entry, host = report.host(plan.host), plan.host
    entry.services, entry.orphans = {}, []
    for step in plan.steps:
        entry.services[step.service] = ServiceResult(step.action, step.reason, "planned")
        say(f"[{host}] {step.describe()}")
    for step in plan.unchanged:
        entry.services[step.service] = ServiceResult("none", step.reason, UNCHANGED)
    for step in plan.orphans:
        entry.orphans.append(step.service)
        say(f"[{host}] {step.service}: kept ({step.reason})")
    entry.status = (WOULD_CHANGE if dry else UPDATED) if plan.changed else UNCHANGED


def plans_under_lock(fleet: Fleet, plans: dict[str, HostPlan], states: dict[str, ServicesStateValue],
                     held: HeldLocks, report: SyncReport, say: Say,
                     plan: Callable[[dict[str, ServicesStateValue]], dict[str, HostPlan]],
                     override: Override | None = None) -> dict[str, HostPlan]:
    """The plans to roll out once the changing hosts are locked (archfleet.sync.lock): each locked host's state was
    read again in the lock's own command, and a host that changed since the first read (another run finished
    there meanwhile) is planned again from it. A host whose lock could not be taken fails and is not changed, and
    so does a rollback's host whose release's files went meanwhile (another run's retention)."""
    from archfleet.sync.pipeline import files_gone

    for host, reason in held.failed.items():
        report.host(host).status, report.host(host).reason = FAILED, f"fleet lock: {reason}"
    again = readable_states({host: parse_services_state(lines) for host, lines in held.reads.items()}, fleet, report)

    def comparable(state: ServicesStateValue) -> dict[str, object]:
        return {key: value for key, value in state.items() if key != "login_ages"}

    changed = {host: state for host, state in again.items() if comparable(state) != comparable(states[host])}
    gone = files_gone(changed, override)
    for host, reason in gone.items():
        report.host(host).status, report.host(host).reason = FAILED, reason
        del changed[host]
    for host in sorted(changed):
        say(f"[{host}] changed since the first read (another run?): planned again from its state under the lock")
    replanned = plan(changed) if changed else {}
    for new_plan in replanned.values():
        record_plan(report, new_plan, False, say)
    return {host: replanned.get(host, host_plan) for host, host_plan in plans.items()
            if (not host_plan.changed or host in again) and host not in gone}


def sync(fleet: Fleet, *, dry: bool, prune: bool, limit: str | None, say: Say,
         run: RunInfo | None = None, parallel: int | None = None, override: Override | None = None,
         only: frozenset[str] | None = None) -> SyncReport:
    """The whole sync; the report says per host what happened. Raises PreflightFailed (nothing changed). ``run``:
    who runs it and why (the fleet lock's holder, the release's record). ``parallel``: ``--parallel``, hosts at
    once (archfleet.sync.scope.parallel_of). ``override`` and ``only``: a rollback's containers and service
    (archfleet.sync.pipeline.plan_fleet; the release recorded is the run's all the same)."""
    run = run or RunInfo("sync")
    if fleet.hosts is None:
        raise InputError(f"{fleet.path}: no `inventory:`: nothing to sync")
    names = hosts_in_scope(fleet, limit)
    if any(spec.pulls for spec in fleet.spot_fleets.values()):  # their instances converge themselves
        from archfleet.spot.pull_mode import hosts_the_sync_reaches

        names = hosts_the_sync_reaches(fleet, names, say)
    timeouts = timeouts_of(fleet)
    report = SyncReport(dry)
    started = time.monotonic()
    parallel = parallel_of(fleet, parallel)
    session: HostSession | None = None
    held: HeldLocks | None = None
    try:
        placed = sorted({spec.name for host in names for spec in placement_of(fleet).services_on(host)})
        deadline = started + timeouts.run
        finish_reading = start_reading_states(names, fleet, say, parallel, deadline)  # the hosts' ssh runs from here
        from archfleet.sync.pipeline import files_gone, plan_fleet, tags_to_read

        tags = read_tags(fleet, tags_to_read(fleet, names, placed, override, only))  # while the hosts answer
        from archfleet.sync.plan import rollout_batches

        states = readable_states(finish_reading(), fleet, report)
        for host, reason in files_gone(states, override).items():
            report.host(host).status, report.host(host).reason = FAILED, reason
            del states[host]
        generated = settle_fleet_secrets(fleet, names, states, dry=dry, say=say)  # a missing one: pull or generate
        plans = plan_fleet(fleet, states, prune, tags, override, only)
        for plan in plans.values():
            record_plan(report, plan, dry, say)
        if dry:
            for spec, groups in rollout_batches(placement_of(fleet), plans, set()):
                for label, batch in groups:
                    report.batches.append({"service": spec.name, "batch": label, "hosts": batch})
                    say(f"sync: {spec.name}: would roll out {label}: {', '.join(batch)}")
        elif any(plan.changed for plan in plans.values()):  # only now are pyinfra and its connections needed
            import gevent

            from archfleet.sync.hosts import HostSession
            from archfleet.sync.lock import EXPIRY_MARGIN_SECONDS, take_locks
            from archfleet.sync.rollout import Rollout

            session = HostSession(fleet.hosts, int(timeouts.connect), parallel)
            held = take_locks(session, [host for host, plan in plans.items() if plan.changed], run,
                              expires_after=timeouts.run + EXPIRY_MARGIN_SECONDS, say=say, then=SERVICES_STATE_COMMAND)
            plans = plans_under_lock(fleet, plans, states, held, report, say,
                                     lambda again: plan_fleet(fleet, again, prune, tags, override, only), override)
            generated.write({**states, **{host: parse_services_state(lines) for host, lines in held.reads.items()}})
            remaining = max(1.0, timeouts.run - (time.monotonic() - started))
            with gevent.Timeout(remaining, StepFailed(f"the whole sync timed out after {timeouts.run:g} s")):
                # finalize releases a host's lock in its own command, unless a spot release is published after
                # the rollout (archfleet.spot.release): then the locks cover the publication too
                Rollout(fleet, session, plans, report, say,
                        ReleaseContext(run, fleet_sha256(fleet.path), fleet.releases_retain),
                        lock=None if fleet.spot_fleets else held).run()
            from archfleet.spot.release import publish_after_sync  # what a spot fleet's replacements boot

            publish_after_sync(fleet, plans, report, tags, run, say)
    except StepFailed as error:
        for entry in report.hosts.values():
            if entry.status not in (FAILED, UNCHANGED):
                entry.status, entry.reason = FAILED, error.reason
    finally:
        if held is not None:
            held.release()
        if session is not None:
            session.disconnect()
    return report
