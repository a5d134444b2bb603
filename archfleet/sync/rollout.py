"""`archfleet sync` end to end: read every host's state, plan, then roll the changes out safely.

1. **Read** (one command per host, in parallel, time-bounded): a host that cannot be reached fails alone.
2. **Plan** (archfleet.sync.pipeline): the pre-flight pins every tag once; a tag without a verified image for a
   host's platform stops everything here, before any host is touched. ``--dry`` stops here too.
3. **Pull**: every host that will change uploads its files and pulls its images by digest, in parallel. No
   container is stopped, created or removed in this phase; a host whose pull fails (or times out) fails alone.
4. **Switch**, service by service in start order: a canary batch first, then batches (``rollout:``), each host's
   switch script keeping the previous container. The first failed host stops the rollout (circuit breaker):
   hosts not reached are left as they are, and hosts already moved in this sync are rolled back to their previous
   containers (``rollout.rollback``, on by default).
5. **Finalize**: on every host whose changes stand, previous containers and unused file versions are removed
   (and, with ``--prune``, containers of services no longer declared). One command per host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent

from archfleet.errors import InputError
from archfleet.facts.services import ServicesState, ServicesStateValue
from archfleet.fleet import Fleet
from archfleet.fleet.rollout import TimeoutsSpec
from archfleet.fleet.services import ServiceSpec
from archfleet.placement import start_order
from archfleet.services.preflight import prefetch_reports
from archfleet.sync.hosts import HostSession, Outcome, StepFailed
from archfleet.sync.pipeline import placement_of, plan_fleet
from archfleet.sync.plan import SWITCHING_ACTIONS, HostPlan, ServiceStep, batches
from archfleet.sync.report import (
    FAILED,
    NOT_REACHED,
    ROLLED_BACK,
    UNCHANGED,
    UPDATED,
    WOULD_CHANGE,
    ServiceResult,
    SyncReport,
)
from archfleet.sync.steps import finalize_command, step_command, undo_command
from archfleet.tasks import service_commands

Say = Callable[[str], None]


def timeouts_of(fleet: Fleet) -> TimeoutsSpec:
    return fleet.timeouts


def hosts_in_scope(fleet: Fleet, limit: str | None) -> list[str]:
    """Every inventory host, or those of ``limit`` (host or group names, comma-separated)."""
    inventory = fleet.hosts
    names = sorted(host.name for host in inventory)
    if not limit:
        return names
    chosen: set[str] = set()
    for word in (w.strip() for w in limit.split(",") if w.strip()):
        group = inventory.get_group(word, None)
        if word in names:
            chosen.add(word)
        elif group is not None:
            chosen.update(host.name for host in group)
        else:
            raise InputError(f"--limit: {word!r} is neither a host nor a group of {fleet.inventory}")
    return sorted(chosen)


def rollout_batches(fleet: Fleet, plans: dict[str, HostPlan],
                    skip: set[str]) -> list[tuple[ServiceSpec, list[tuple[str, list[str]]]]]:
    """Per service in start order: its labelled batches (``canary (1/3)``, ``batch 1 (2/3)``...) over the hosts
    where it switches."""
    result = []
    for spec in start_order(placement_of(fleet).services.values()):
        hosts = [h for h, plan in plans.items() if h not in skip
                 and (step := plan.step(spec.name)) is not None and step.action in SWITCHING_ACTIONS]
        if not hosts:
            continue
        # A service that runs on none of these hosts yet has nothing a canary could protect: its first rollout
        # goes straight to the batches (which still stop at the first failure).
        first_rollout = all(plans[h].step(spec.name).action == "create" for h in hosts)  # type: ignore[union-attr]
        canary = 0 if first_rollout else spec.rollout.canary
        groups = batches(hosts, canary, spec.rollout.batch_size(len(hosts)))
        labelled = []
        for index, batch in enumerate(groups):
            label = "canary" if index == 0 and canary > 0 else f"batch {index + (0 if canary > 0 else 1)}"
            labelled.append((f"{label} ({index + 1}/{len(groups)})", batch))
        result.append((spec, labelled))
    return result


class Rollout:
    def __init__(self, fleet: Fleet, session: HostSession, plans: dict[str, HostPlan], report: SyncReport,
                 say: Say):
        self.fleet = fleet
        self.session = session
        self.plans = plans
        self.report = report
        self.say = say
        self.timeouts = timeouts_of(fleet)
        self.moved: dict[str, list[ServiceStep]] = {}  # host -> steps done in this sync, in order
        self.failed: set[str] = set()

    def fail(self, host: str, reason: str, service: str | None = None) -> None:
        self.failed.add(host)
        entry = self.report.host(host)
        entry.status, entry.reason = FAILED, reason
        if service and service in entry.services:
            entry.services[service].result = FAILED
            entry.services[service].detail = reason

    def pull(self) -> None:
        changing = [h for h, p in self.plans.items() if p.changed]
        if not changing:
            return
        self.say(f"sync: pull: images and files on {len(changing)} host(s): {', '.join(changing)}")

        def prepare(host: Any) -> None:
            plan = self.plans[host.name]
            self.session.login(host, plan.logins)
            self.session.upload(host, plan.files)
            images = sorted({s.pulls for s in plan.steps if s.pulls})
            if images:
                self.session.run(host, service_commands.pull_images(images, int(self.timeouts.pull)), "pull failed")

        images_per_host = max(len({s.pulls for s in p.steps if s.pulls}) for p in self.plans.values())
        bound = self.timeouts.connect + self.timeouts.pull * max(1, images_per_host) + 30
        for host, outcome in self.session.each(changing, "pull", bound, prepare).items():
            if isinstance(outcome, Outcome):
                self.say(f"[{host}] pull failed: {outcome.reason}")
                self.fail(host, outcome.reason)
                for step in self.plans[host].steps:
                    self.report.host(host).services[step.service].result = NOT_REACHED

    def switch(self) -> str | None:
        """Every service's batches; returns the host whose failure stopped the rollout (None: all done)."""
        for spec, groups in rollout_batches(self.fleet, self.plans, self.failed):
            pause = float(spec.rollout.pause)
            for index, (label, batch) in enumerate(groups):
                self.report.batches.append({"service": spec.name, "batch": label, "hosts": batch})
                self.say(f"sync: {spec.name}: {label}: {', '.join(batch)}")
                stopped_at = self.switch_batch(spec.name, batch)
                if stopped_at:
                    return stopped_at
                if pause and index + 1 < len(groups):
                    self.say(f"sync: {spec.name}: pause {pause:g} s before the next batch")
                    gevent.sleep(pause)
        return None

    def switch_batch(self, service: str, batch: list[str]) -> str | None:
        steps = {h: self.plans[h].step(service) for h in batch}
        longest = min(self.timeouts.health, max(s.desired.wait_seconds for s in steps.values() if s and s.desired))
        bound = self.timeouts.start * 2 + longest + 30

        def switch(host: Any) -> None:
            step = steps[host.name]
            assert step is not None
            self.session.run(host, step_command(step, self.timeouts), f"{service}: {step.action} failed")

        outcomes = self.session.each(batch, service, bound, switch)
        first_failed = None
        for host in batch:
            outcome, step = outcomes[host], steps[host]
            assert step is not None
            if isinstance(outcome, Outcome):
                for line in outcome.stderr:
                    if not line.startswith(service_commands.FAILURE_PREFIX):
                        self.say(f"[{host}] {line}")
                self.say(f"[{host}] {service}: FAILED: {outcome.reason}")
                self.fail(host, outcome.reason, service)
                first_failed = first_failed or host
            else:
                self.moved.setdefault(host, []).append(step)
                self.report.host(host).services[service].result = UPDATED
        return first_failed

    def roll_back(self, stopped_at: str) -> None:
        failed = self.report.host(stopped_at).services_with(FAILED)
        enabled = self.fleet.services[failed[0]].rollout.rollback if failed else self.fleet.rollout.rollback
        moved = {h: steps for h, steps in self.moved.items() if steps}
        if not enabled or not moved:
            return
        self.say(f"sync: rolling back {len(moved)} host(s) moved in this sync: {', '.join(sorted(moved))}")

        def undo(host: Any) -> None:
            commands = [c for c in (undo_command(s) for s in reversed(moved[host.name])) if c is not None]
            for command in commands:
                self.session.run(host, command, "rollback failed")

        for host, outcome in self.session.each(sorted(moved), "rollback", self.timeouts.start * 4 + 30,
                                               undo).items():
            entry = self.report.host(host)
            if isinstance(outcome, Outcome):
                self.fail(host, f"rollback failed: {outcome.reason}")
                continue
            for step in moved[host]:
                entry.services[step.service].result = ROLLED_BACK
            self.moved[host] = []

    def finalize(self) -> None:
        commands = {}
        for host, plan in self.plans.items():
            if host in self.failed:
                continue
            command = finalize_command(plan, self.moved.get(host, []))
            if command is not None:
                commands[host] = command

        def tidy(host: Any) -> None:
            self.session.run(host, commands[host.name], "finalize failed")

        for host, outcome in self.session.each(sorted(commands), "finalize", self.timeouts.start * 2 + 30,
                                               tidy).items():
            if isinstance(outcome, Outcome):
                self.fail(host, f"finalize: {outcome.reason}")
                continue
            for step in self.plans[host].steps:
                if step.action in ("cleanup", "remove"):
                    self.report.host(host).services[step.service].result = UPDATED

    def run(self) -> None:
        self.pull()
        stopped_at = self.switch()
        if stopped_at is not None:
            self.report.stopped_at = stopped_at
            self.roll_back(stopped_at)
            for host, plan in self.plans.items():
                for step in plan.steps:
                    result = self.report.host(host).services[step.service]
                    if result.result == "planned":
                        result.result = NOT_REACHED
        else:
            self.finalize()
        self.finalize_statuses(stopped_at)

    def finalize_statuses(self, stopped_at: str | None) -> None:
        reason = f"the rollout stopped at {stopped_at}" if stopped_at else ""
        for host in self.plans:
            entry = self.report.host(host)
            if entry.status == FAILED:
                continue
            results = {r.result for r in entry.services.values()}
            if ROLLED_BACK in results:
                entry.status, entry.reason = ROLLED_BACK, reason
            elif NOT_REACHED in results:
                entry.status, entry.reason = NOT_REACHED, reason
            elif UPDATED in results:
                entry.status = UPDATED
            else:
                entry.status = UNCHANGED


def read_states(session: HostSession, names: list[str], fleet: Fleet, report: SyncReport,
                say: Say) -> dict[str, ServicesStateValue]:
    """The ServicesState fact of every host (one command each); unreadable hosts are FAILED in the report."""
    timeouts = timeouts_of(fleet)
    say(f"sync: reading the state of {len(names)} host(s)")
    values = session.each(names, "facts", timeouts.connect + timeouts.facts,
                          lambda host: session.fact(host, ServicesState))
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


def sync(fleet: Fleet, *, dry: bool, prune: bool, limit: str | None, say: Say) -> SyncReport:
    """The whole sync; the report says per host what happened. Raises PreflightFailed (nothing changed)."""
    if fleet.hosts is None:
        raise InputError(f"{fleet.path}: no `inventory:`: nothing to sync")
    names = hosts_in_scope(fleet, limit)
    timeouts = timeouts_of(fleet)
    report = SyncReport(dry)
    session = HostSession(fleet.hosts, int(timeouts.connect))
    try:
        with gevent.Timeout(timeouts.run, StepFailed(f"the whole sync timed out after {timeouts.run:g} s")):
            placed = sorted({spec.name for host in names for spec in placement_of(fleet).services_on(host)})
            prefetch = gevent.spawn(prefetch_reports, fleet, placed)  # the registry is read while the hosts are
            states = read_states(session, names, fleet, report, say)
            plans = plan_fleet(fleet, states, prune, prefetch.get())
            for host, plan in plans.items():
                entry = report.host(host)
                for step in plan.steps:
                    entry.services[step.service] = ServiceResult(step.action, step.reason, "planned")
                    say(f"[{host}] {step.describe()}")
                for step in plan.unchanged:
                    entry.services[step.service] = ServiceResult("none", step.reason, UNCHANGED)
                for step in plan.orphans:
                    entry.orphans.append(step.service)
                    say(f"[{host}] {step.service}: kept ({step.reason})")
                entry.status = (WOULD_CHANGE if dry else UPDATED) if plan.changed else UNCHANGED
            if dry:
                for spec, groups in rollout_batches(fleet, plans, set()):
                    for label, batch in groups:
                        report.batches.append({"service": spec.name, "batch": label, "hosts": batch})
                        say(f"sync: {spec.name}: would roll out {label}: {', '.join(batch)}")
            else:
                Rollout(fleet, session, plans, report, say).run()
    except StepFailed as error:
        for entry in report.hosts.values():
            if entry.status not in (FAILED, UNCHANGED):
                entry.status, entry.reason = FAILED, error.reason
    finally:
        session.disconnect()
    return report

