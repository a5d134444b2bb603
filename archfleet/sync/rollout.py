"""The rollout of a sync's plans, once a host must change (archfleet.sync.run reads and plans first, and imports
this module, with pyinfra and gevent, only then).

1. **Read** (one command per host, in parallel, time-bounded): a host that cannot be reached fails alone. Hosts
   OpenSSH can reach are read over plain ``ssh`` (archfleet.sync.read), and pyinfra is imported only when a host
   must change: a no-op sync costs one SSH command per host and no pyinfra.
2. **Plan** (archfleet.sync.pipeline): the pre-flight pins every tag once; a tag without a verified image for a
   host's platform stops everything here, before any host is touched. ``--dry`` stops here too.
3. **Pull**: every host that will change uploads its files and pulls its images by digest, all at once. No
   container is stopped, created or removed by a pull; a host whose pull fails (or times out) fails alone.
4. **Switch**, service by service in start order: a canary batch first, then batches (``rollout:``), each host's
   switch script keeping the previous container. The first failed host stops the rollout (circuit breaker):
   hosts not reached are left as they are, and hosts already moved in this sync are rolled back to their previous
   containers (``rollout.rollback``, on by default). A service rolled out in one batch (its first rollout, or
   ``batch: 100%`` without a canary) switches each host as soon as that host's own pull is done, so the hosts
   that pulled first wait for their health checks while the last ones still pull; once a host of the batch has
   failed, no host starts its switch. A service of several batches waits for every pull first (who pulled decides
   who is in which batch).
5. **Finalize**: on every host whose changes stand, previous containers are removed (and, with ``--prune``,
   containers of services no longer declared), the release is recorded, and file versions and images no retained
   release uses are removed (archfleet.sync.releases). One command per host.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent

from archfleet.fleet import Fleet
from archfleet.placement import start_order
from archfleet.sync.hosts import SKIPPED, HostSession
from archfleet.sync.outcome import Outcome
from archfleet.sync.plan import HostPlan, ServiceStep, service_batches
from archfleet.sync.releases import ReleaseContext
from archfleet.sync.report import FAILED, NOT_REACHED, ROLLED_BACK, UNCHANGED, UPDATED, SyncReport
from archfleet.sync.scope import placement_of, timeouts_of
from archfleet.sync.steps import finalize_command, step_command, undo_command

if TYPE_CHECKING:
    from archfleet.sync.lock import HeldLocks
from archfleet.tasks import service_commands

Say = Callable[[str], None]


class Rollout:
    def __init__(self, fleet: Fleet, session: HostSession, plans: dict[str, HostPlan], report: SyncReport,
                 say: Say, release: ReleaseContext | None = None, lock: HeldLocks | None = None):
        self.fleet = fleet
        self.lock = lock  # this run's locks: finalize releases a host's in its own command
        self.release = release  # what finalize records on each host it changed
        self.session = session
        self.plans = plans
        self.report = report
        self.say = say
        self.timeouts = timeouts_of(fleet)
        self.moved: dict[str, list[ServiceStep]] = {}  # host -> steps done in this sync, in order
        self.failed: set[str] = set()
        self.pulling: dict[str, gevent.Greenlet] = {}  # host -> its pull, until its outcome is recorded

    def fail(self, host: str, reason: str, service: str | None = None) -> None:
        self.failed.add(host)
        entry = self.report.host(host)
        entry.status, entry.reason = FAILED, reason
        if service and service in entry.services:
            entry.services[service].result = FAILED
            entry.services[service].detail = reason

    def start_pulls(self) -> None:
        """Every changing host's files and images, all at once; ``pulled(host)`` waits for one of them."""
        changing = [h for h, p in self.plans.items() if p.changed]
        if not changing:
            return
        self.say(f"sync: pull: images and files on {len(changing)} host(s): {', '.join(changing)}")

        def prepare(host: Any) -> None:
            started = time.monotonic()
            plan = self.plans[host.name]
            self.session.login(host, plan.logins)
            images = sorted({s.pulls for s in plan.steps if s.pulls})
            pull = service_commands.pull_images(images, int(self.timeouts.pull)) if images else None
            said = self.session.upload(host, plan.files, then=pull, then_reason="pull failed")
            if images:
                self.say(f"[{host.name}] {pull_summary(said)} in {time.monotonic() - started:.1f} s")

        images_per_host = max(len({s.pulls for s in p.steps if s.pulls}) for p in self.plans.values())
        bound = self.timeouts.connect + self.timeouts.pull * max(1, images_per_host) + 30
        self.pulling = self.session.spawn(changing, "pull", bound, prepare)

    def pulled(self, host: str) -> bool:
        """Wait for the host's pull (if it has one still running); False when the host has failed."""
        greenlet = self.pulling.pop(host, None)
        if greenlet is not None:
            greenlet.join()
            for line in self.session.new_keys.report([host]):
                self.say(line)
            outcome = self.session.outcome_of(host, greenlet.value)
            if isinstance(outcome, Outcome):
                self.say(f"[{host}] pull failed: {outcome.reason}")
                self.fail(host, outcome.reason)
                for step in self.plans[host].steps:
                    self.report.host(host).services[step.service].result = NOT_REACHED
        return host not in self.failed

    def finish_pulls(self) -> None:
        """Every pull ended and its failure recorded."""
        for host in list(self.pulling):
            self.pulled(host)

    def switch(self) -> str | None:
        """Every service's batches; returns the host whose failure stopped the rollout (None: all done)."""
        for spec in start_order(placement_of(self.fleet).services.values()):
            groups = service_batches(spec, self.plans, self.failed)
            if len(groups) > 1:  # who pulled decides who is in which batch
                self.finish_pulls()
                groups = service_batches(spec, self.plans, self.failed)
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
        """Each host of the batch switches once its pull is done, unless a host of the batch has failed by then."""
        steps = {h: self.plans[h].step(service) for h in batch}
        longest = min(self.timeouts.health, max(s.desired.wait_seconds for s in steps.values() if s and s.desired))
        bound = self.timeouts.start * 2 + longest + 30
        halted: list[str] = []

        def ready(host: str) -> bool:
            return self.pulled(host) and not halted

        def switch(host: Any) -> None:
            step = steps[host.name]
            assert step is not None
            try:
                self.session.run(host, step_command(step, self.timeouts), f"{service}: {step.action} failed")
            except BaseException:
                halted.append(host.name)
                raise

        outcomes = self.session.collect(self.session.spawn(batch, service, bound, switch, before=ready))
        first_failed = None
        for host in batch:
            outcome, step = outcomes[host], steps[host]
            assert step is not None
            if outcome is SKIPPED:  # its pull failed (reported), or the batch had failed before it could start
                continue
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
            undone = (undo_command(s, self.timeouts) for s in reversed(moved[host.name]))
            commands = [c for c in undone if c is not None]
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

    def finalize(self, hosts: set[str] | None = None) -> None:
        """Tidy every host whose changes stand (``hosts``: only these)."""
        commands = {}
        for host, plan in self.plans.items():
            if host in self.failed or (hosts is not None and host not in hosts):
                continue
            command = finalize_command(plan, self.moved.get(host, []), self.release)
            if command is not None:
                commands[host] = command

        def tidy(host: Any) -> None:
            if self.lock is None:
                self.session.run(host, commands[host.name], "finalize failed")
                return
            lines = self.session.run(host, self.lock.release_after(host.name, commands[host.name]),
                                     "finalize failed")
            self.lock.released(host.name, lines)

        for host, outcome in self.session.each(sorted(commands), "finalize", self.timeouts.start * 2 + 30,
                                               tidy).items():
            if isinstance(outcome, Outcome):
                self.fail(host, f"finalize: {outcome.reason}")
                continue
            for step in self.plans[host].steps:
                if step.action in ("cleanup", "remove"):
                    self.report.host(host).services[step.service].result = UPDATED

    def run(self) -> None:
        self.start_pulls()
        stopped_at = self.switch()
        if stopped_at is not None:
            self.report.stopped_at = stopped_at
            self.roll_back(stopped_at)
            self.finish_pulls()  # the hosts the rollout did not reach
            kept = {h for h, steps in self.moved.items() if steps}  # `rollback: false`: their changes stand
            if kept:
                self.finalize(kept)
            for host, plan in self.plans.items():
                for step in plan.steps:
                    result = self.report.host(host).services[step.service]
                    if result.result == "planned":
                        result.result = NOT_REACHED
        else:
            self.finish_pulls()  # hosts with nothing to switch (only containers to remove)
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


def pull_summary(lines: list[str]) -> str:
    """The pull script's ``held IMAGE`` / ``pulled IMAGE`` lines in one phrase: ``pulled 0 image(s), already held
    1`` (an image the host holds by digest is not pulled again)."""
    pulled = sum(1 for line in lines if line.startswith("pulled "))
    held = sum(1 for line in lines if line.startswith("held "))
    return f"pulled {pulled} image(s), already held {held}" if held else f"pulled {pulled} image(s)"
