"""Which step script each planned action runs, what undoes it, and what tidies a host afterwards. Pure: the
rollout (archfleet.sync.rollout) and the plain pyinfra operation (archfleet.sync.operation) both use these."""

from __future__ import annotations

from typing import Any

from pyinfra.api import QuoteString, StringCommand

from archfleet.fleet.rollout import TimeoutsSpec
from archfleet.sync.plan import HostPlan, ServiceStep
from archfleet.tasks import service_commands


def step_command(step: ServiceStep, timeouts: TimeoutsSpec) -> StringCommand:
    desired = step.desired
    assert desired is not None
    if step.action in ("create", "recreate"):
        return service_commands.switch_container(desired, int(timeouts.start), int(timeouts.health))
    if step.action == "start":
        return service_commands.start_container(desired, int(timeouts.health))
    if step.action == "restore":
        return service_commands.rollback_container(desired.name, desired.previous_name)
    raise ValueError(step.action)


def undo_command(step: ServiceStep) -> StringCommand | None:
    """What puts the host back as it was before ``step`` ran (None: nothing to undo)."""
    desired = step.desired
    assert desired is not None
    if step.action == "recreate":
        return service_commands.rollback_container(desired.name, desired.previous_name)
    if step.action == "create":
        return service_commands.remove_container(desired.name)
    if step.action == "start":
        return StringCommand("docker", "stop", "-t", "10", QuoteString(desired.name), ">/dev/null")
    return None


def finalize_command(plan: HostPlan, moved: list[ServiceStep]) -> StringCommand | None:
    """One command for everything left to tidy on a host whose changes stand."""
    parts: list[Any] = []
    for step in moved + [s for s in plan.steps if s.action == "cleanup"]:
        if step.desired is not None and step.tidy:
            parts.append(service_commands.finalize_container(step.desired))
    for step in plan.steps:
        if step.action == "remove":
            for container in step.containers:
                parts.append(service_commands.remove_container(container))
            parts.append(service_commands.remove_service_files(step.service))
    if not parts:
        return None
    joined: list[Any] = []
    for part in parts:
        joined += [*(["&&"] if joined else []), part]
    return StringCommand(*joined)
