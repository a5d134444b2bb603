"""What each host must do, decided from its ServicesState fact and its desired containers. Pure: no host, no
registry, no pyinfra state; the CLI's rollout and the plain pyinfra deploy both execute these plans.

Per declared service on a host:
- ``create``   no container (and no previous one to put back);
- ``recreate`` its spec or its platform's image digest changed;
- ``start``    the container is up to date but stopped;
- ``restore``  a rollout was interrupted: the service's container is missing or stopped and the previous one,
               which is up to date, is there: it is put back;
- ``cleanup``  the container is up to date and a previous one is left behind by an interrupted rollout;
- ``none``     up to date and running.
Containers of services no longer declared for the host are *orphans*: listed in every plan, removed only when
pruning is asked for (``remove``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archfleet.facts.service_reads import FILES_ROOT, ServicesStateValue
from archfleet.fleet.services import ServiceSpec
from archfleet.placement import (
    CONTAINER_PREFIX,
    PREVIOUS_SUFFIX,
    Placement,
    container_name,
    previous_container_name,
    start_order,
)
from archfleet.services.desired import DesiredContainer, ManagedFile, decide, short

SWITCHING_ACTIONS = ("create", "recreate", "start", "restore")  # rolled out in batches, behind the canary
PULLING_ACTIONS = ("create", "recreate")


@dataclass(frozen=True)
class ServiceStep:
    service: str
    action: str  # create, recreate, start, restore, cleanup, remove, none
    reason: str
    desired: DesiredContainer | None = None  # None for `remove`
    uploads: tuple[ManagedFile, ...] = ()  # files the host lacks (content, owner or mode)
    containers: tuple[str, ...] = ()  # for `remove`: the containers to remove
    # Once the step stands, is there anything to tidy (a previous container, file versions it no longer mounts)?
    # A first create on a host has neither, so its host needs no finalize command.
    tidy: bool = True

    @property
    def pulls(self) -> str | None:
        """The image this step pulls (REPO@DIGEST), if any."""
        return self.desired.image if self.desired is not None and self.action in PULLING_ACTIONS else None

    def describe(self) -> str:
        pull = f"; pull {self.pulls}" if self.pulls else ""
        return f"{self.service}: {self.action} ({self.reason}{pull})"


@dataclass(frozen=True)
class HostPlan:
    host: str
    platform: str
    steps: tuple[ServiceStep, ...] = ()  # changes, in start order (removals last)
    unchanged: tuple[ServiceStep, ...] = ()
    orphans: tuple[ServiceStep, ...] = ()  # services no longer declared here, kept (no --prune)
    files: tuple[ManagedFile, ...] = field(default=(), repr=False)  # every file the host's steps need uploaded
    logins: tuple[Any, ...] = field(default=(), repr=False)  # archfleet.credentials.RegistryLogin to renew first

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    def step(self, service: str) -> ServiceStep | None:
        return next((s for s in self.steps if s.service == service), None)


def service_of(container: str) -> str | None:
    """``archfleet-web`` and ``archfleet-web-previous`` -> ``web`` (the label says it too; this is the fallback)."""
    if not container.startswith(CONTAINER_PREFIX):
        return None
    name = container[len(CONTAINER_PREFIX):]
    return name[: -len(PREVIOUS_SUFFIX)] if name.endswith(PREVIOUS_SUFFIX) else name


def missing_files(desired: DesiredContainer, state: ServicesStateValue) -> tuple[ManagedFile, ...]:
    modes = state.get("file_modes") or {}
    return tuple(
        f for f in desired.files
        if state["files"].get(f.host_path) != f.sha256
        or modes.get(f.host_path, f"{f.owner} {f.mode}") != f"{f.owner} {f.mode}"
    )


def stale_versions(desired: DesiredContainer, state: ServicesStateValue) -> set[str]:
    """The service's file versions the host has (as read) that ``desired`` does not mount."""
    root = f"{FILES_ROOT}/{desired.service}/"
    present = {path[len(root):].split("/", 1)[0] for path in state["files"] if path.startswith(root)}
    return present - {f.host_path.rsplit("/", 2)[-2] for f in desired.files}


def plan_service(desired: DesiredContainer, state: ServicesStateValue) -> ServiceStep:
    containers = state["containers"]
    current = containers.get(desired.name)
    previous = containers.get(previous_container_name(desired.service))
    uploads = missing_files(desired, state)
    if previous is not None and (current is None or current["status"] != "running"):
        decision = decide(desired, previous)
        if decision.action in ("none", "start"):
            return ServiceStep(desired.service, "restore", "an interrupted rollout left the previous container, "
                               "which is up to date: it is put back", desired, uploads)
        return ServiceStep(desired.service, decision.action, f"{decision.reason} (after an interrupted rollout)",
                           desired, uploads)
    decision = decide(desired, current)
    if decision.action == "none" and uploads:
        return ServiceStep(desired.service, "recreate", f"{len(uploads)} mounted file(s) missing or changed on "
                           "the host", desired, uploads)
    if decision.action == "none" and previous is not None:
        return ServiceStep(desired.service, "cleanup", "remove the previous container an interrupted rollout "
                           f"left behind ({desired.name} runs {short(desired.digest)})", desired)
    # create and start keep no previous container (it would have been restored above)
    tidy = decision.action not in ("create", "start") or bool(stale_versions(desired, state))
    return ServiceStep(desired.service, decision.action, decision.reason, desired, uploads, tidy=tidy)


def plan_host(host: str, state: ServicesStateValue, desired: list[DesiredContainer], prune: bool,
              ignore: frozenset[str] = frozenset()) -> HostPlan:
    """``desired``: the host's containers in start order. ``prune``: remove containers of undeclared services.
    ``ignore``: services this plan leaves alone (a rollback of another service): neither planned nor orphans."""
    steps: list[ServiceStep] = []
    unchanged: list[ServiceStep] = []
    for container in desired:
        step = plan_service(container, state)
        (unchanged if step.action == "none" else steps).append(step)
    wanted = {container_name(d.service) for d in desired} | {d.previous_name for d in desired}
    orphaned: dict[str, list[str]] = {}
    for name, current in sorted(state["containers"].items()):
        if name not in wanted and (current.get("service") or service_of(name) or name) not in ignore:
            orphaned.setdefault(current.get("service") or service_of(name) or name, []).append(name)
    orphans = []
    for service, names in sorted(orphaned.items()):
        reason = "not declared for this host" + ("" if prune else "; kept: `sync --prune` removes it")
        orphans.append(ServiceStep(service, "remove", reason, None, (), tuple(names)))
    if prune:
        steps.extend(orphans)
        orphans = []
    files = tuple(f for step in steps for f in step.uploads)
    return HostPlan(host, state.get("platform") or "?", tuple(steps), tuple(unchanged), tuple(orphans), files)


def batches(hosts: list[str], canary: int, batch_size: int) -> list[list[str]]:
    """``hosts`` split into a canary batch (the first ``canary`` hosts; none when 0) and batches of
    ``batch_size``. Every host is in exactly one batch, in order."""
    ordered = list(hosts)
    result = [ordered[:canary]] if canary > 0 and ordered else []
    rest = ordered[canary:] if canary > 0 else ordered
    size = max(1, batch_size)
    result += [rest[i:i + size] for i in range(0, len(rest), size)]
    return [batch for batch in result if batch]


def service_batches(spec: ServiceSpec, plans: dict[str, HostPlan], skip: set[str]) -> list[tuple[str, list[str]]]:
    """One service's labelled batches (``canary (1/3)``, ``batch 1 (2/3)``...) over the hosts where it switches,
    but ``skip``; none when it switches nowhere."""
    hosts = [h for h, plan in plans.items() if h not in skip
             and (step := plan.step(spec.name)) is not None and step.action in SWITCHING_ACTIONS]
    if not hosts:
        return []
    # A service that runs on none of these hosts yet has nothing a canary could protect: its first rollout
    # goes straight to the batches (which still stop at the first failure).
    first_rollout = all(plans[h].step(spec.name).action == "create" for h in hosts)  # type: ignore[union-attr]
    canary = 0 if first_rollout else spec.rollout.canary
    groups = batches(hosts, canary, spec.rollout.batch_size(len(hosts)))
    labelled = []
    for index, batch in enumerate(groups):
        label = "canary" if index == 0 and canary > 0 else f"batch {index + (0 if canary > 0 else 1)}"
        labelled.append((f"{label} ({index + 1}/{len(groups)})", batch))
    return labelled


def rollout_batches(placement: Placement, plans: dict[str, HostPlan],
                    skip: set[str]) -> list[tuple[ServiceSpec, list[tuple[str, list[str]]]]]:
    """Per service in start order: its labelled batches over the hosts where it switches."""
    return [(spec, labelled) for spec in start_order(placement.services.values())
            if (labelled := service_batches(spec, plans, skip))]
