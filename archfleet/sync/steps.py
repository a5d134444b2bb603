"""Which step script each planned action runs, what undoes it, and what tidies a host afterwards. Pure: the
rollout (archfleet.sync.rollout) and the plain pyinfra operation (archfleet.sync.operation) both use these."""

from __future__ import annotations

from typing import Any

from pyinfra.api import QuoteString, StringCommand

from archfleet.fleet.rollout import TimeoutsSpec
from archfleet.sync.plan import HostPlan, ServiceStep
from archfleet.sync.releases import RELEASES_DIR, ReleaseContext, keep_lines, record_arguments
from archfleet.tasks import service_commands


def step_command(step: ServiceStep, timeouts: TimeoutsSpec) -> StringCommand:
    desired = step.desired
    assert desired is not None
    if step.action in ("create", "recreate"):
        return service_commands.switch_container(desired, int(timeouts.start), int(timeouts.health))
    if step.action == "start":
        return service_commands.start_container(desired, int(timeouts.health))
    if step.action == "restore":
        return service_commands.rollback_container(desired.name, desired.previous_name, int(timeouts.start))
    raise ValueError(step.action)


def undo_command(step: ServiceStep, timeouts: TimeoutsSpec) -> StringCommand | None:
    """What puts the host back as it was before ``step`` ran (None: nothing to undo)."""
    desired = step.desired
    assert desired is not None
    if step.action == "recreate":
        return service_commands.rollback_container(desired.name, desired.previous_name, int(timeouts.start))
    if step.action == "create":
        return service_commands.remove_container(desired.name)
    if step.action == "start":
        return StringCommand("docker", "stop", "-t", "10", QuoteString(desired.name), ">/dev/null")
    return None


def finalize_command(plan: HostPlan, moved: list[ServiceStep],
                     release: ReleaseContext | None = None) -> StringCommand | None:
    """One command for everything left to tidy on a host whose changes stand: previous containers, containers
    pruned, then (tasks/service_commands.record_release) the release's record when ``release`` is given, and
    retention: file versions and images that neither a retained release nor a container uses. Without a
    ``release`` (the plain deploy) no record is written and none removed; a host with nothing to tidy gets no
    command then."""
    parts: list[Any] = []
    done = moved + [s for s in plan.steps if s.action == "cleanup"]
    previous = [s.desired.previous_name for s in done if s.desired is not None and s.tidy]
    for step in plan.steps:
        if step.action == "remove":
            for container in step.containers:
                parts.append(service_commands.remove_container(container))
            parts.append(service_commands.remove_service_files(step.service))
    standing = [s.desired for s in [*done, *plan.unchanged] if s.desired is not None]
    if previous or (release is not None and (done or parts)):
        parts.append(service_commands.record_release(
            RELEASES_DIR, keep=keep_lines(standing), services=sorted({d.service for d in standing}),
            previous=previous,
            **record_arguments(release, plan.host, plan.platform, standing)))
    if not parts:
        return None
    joined: list[Any] = []
    for part in parts:
        joined += [*(["&&"] if joined else []), part]
    return StringCommand(*joined)
