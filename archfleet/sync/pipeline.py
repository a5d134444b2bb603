"""The sync pipeline's pure middle: from the loaded fleet and each host's ServicesState fact to a plan per host.

    fleet = load_fleet(path)                     # parsed, validated, placed and rendered once (offline)
    states = {host: ServicesState value, ...}    # one command per host
    plans = plan_fleet(fleet, states, prune)     # tags pinned once per sync, one HostPlan per host

``archfleet sync`` (archfleet.sync.run) executes the plans as a rolling rollout (archfleet.sync.rollout); the plain
pyinfra deploy ``deploys/services.py`` executes each host's plan as operations.
"""

from __future__ import annotations

from dataclasses import replace

from archfleet.credentials import host_logins
from archfleet.facts.service_reads import ServicesStateValue
from archfleet.fleet import Fleet
from archfleet.images.verify import VerifyReport
from archfleet.references import parse
from archfleet.services.desired import DesiredContainer, desired_container, fleet_context
from archfleet.services.preflight import PinnedTag, pin_services
from archfleet.sync.plan import HostPlan, plan_host
from archfleet.sync.scope import placement_of


def hosts_by_platform(fleet: Fleet, states: dict[str, ServicesStateValue]) -> dict[str, dict[str, list[str]]]:
    """service -> platform -> hosts, over the hosts whose state was read."""
    placement = placement_of(fleet)
    needed: dict[str, dict[str, list[str]]] = {}
    for host, state in states.items():
        for spec in placement.services_on(host):
            if state.get("platform"):
                needed.setdefault(spec.name, {}).setdefault(str(state["platform"]), []).append(host)
    return needed


# host -> service -> the container a command puts there instead of the fleet file's (a rollback's release)
Override = dict[str, dict[str, DesiredContainer]]


def desired_on_host(fleet: Fleet, host: str, platform: str, pins: dict[str, PinnedTag],
                    override: dict[str, DesiredContainer] | None = None,
                    only: frozenset[str] | None = None) -> list[DesiredContainer]:
    """The containers ``host`` should run, in start order, each pinned to its platform's digest; ``override``:
    these services' containers as given; ``only``: just these services."""
    context = fleet_context(fleet)
    result = []
    for spec in placement_of(fleet).services_on(host):
        if only is not None and spec.name not in only:
            continue
        if override and spec.name in override:
            result.append(override[spec.name])
            continue
        pinned = pins[spec.name]
        result.append(desired_container(
            spec, tag=pinned.tag, repository=pinned.repository, digest=pinned.digests[platform],
            host_name=host, platform=platform, context=context,
        ))
    return result


def plan_fleet(fleet: Fleet, states: dict[str, ServicesStateValue], prune: bool,
               reports: dict[str, VerifyReport] | None = None, override: Override | None = None,
               only: frozenset[str] | None = None) -> dict[str, HostPlan]:
    """One plan per host whose state was read (the pre-flight pins every tag first, once; ``reports``: tags
    already read by prefetch_reports). ``override``: containers that replace the fleet file's on some hosts
    (their tags are not pinned there: a rollback needs no tag); ``only``: plan only these services, and leave the
    others' containers alone (not even listed as orphans)."""
    override = override or {}
    needed = {}
    for service, platforms in hosts_by_platform(fleet, states).items():
        if only is not None and service not in only:
            continue
        kept = {platform: left for platform, hosts in platforms.items()
                if (left := [h for h in hosts if service not in override.get(h, {})])}
        if kept:
            needed[service] = kept
    pins = pin_services(fleet, needed, reports)
    ignore = frozenset(fleet.services) - only if only is not None else frozenset()
    plans = {}
    for host, state in sorted(states.items()):
        platform = state.get("platform")
        replaced = {service: with_files_on_host(desired, state) for service, desired in override.get(host, {}).items()}
        desired = desired_on_host(fleet, host, str(platform), pins, replaced, only) if platform else []
        plans[host] = with_stale_logins(fleet, plan_host(host, state, desired, prune, ignore), state)
    return plans


def tags_to_read(fleet: Fleet, names: list[str], placed: list[str], override: Override | None,
                 only: frozenset[str] | None) -> list[str]:
    """The placed services whose tag a sync reads: all, but those ``only`` leaves out and those ``override``
    replaces on every host of ``names`` they run on."""
    placement = placement_of(fleet)
    return [service for service in placed if (only is None or service in only) and any(
        service not in (override or {}).get(host, {})
        for host in names if any(spec.name == service for spec in placement.services_on(host)))]


def files_gone(states: dict[str, ServicesStateValue], override: Override | None) -> dict[str, str]:
    """host -> why a release's containers cannot be put back there: files they mount that the host no longer
    has (a rollback cannot upload them: it has no content)."""
    gone = {}
    for host, containers in (override or {}).items():
        state = states.get(host)
        missing = [f.host_path for d in containers.values() for f in d.files
                   if state is not None and f.host_path not in state["files"]]
        if missing:
            gone[host] = f"the release's file {missing[0]} is gone from the host (nothing changed there)"
    return gone


def with_files_on_host(desired: DesiredContainer, state: ServicesStateValue) -> DesiredContainer:
    """A release's container (archfleet.sync.releases.desired_from_entry), its files taken as the host holds them:
    nothing to upload (missing_on_host says first which are gone)."""
    modes = state.get("file_modes") or {}
    files = []
    for f in desired.files:
        owner, _, mode = modes.get(f.host_path, f"{f.owner} {f.mode}").partition(" ")
        files.append(replace(f, sha256=state["files"].get(f.host_path, f.sha256), owner=owner, mode=mode))
    return replace(desired, files=files)


def with_stale_logins(fleet: Fleet, plan: HostPlan, state: ServicesStateValue) -> HostPlan:
    """Logins that expire (ECR's last 12 hours) are renewed before a pull from their registry when they are older
    than their ``refresh_after`` (the ServicesState fact says how old each is: no command of its own)."""
    pulled = {parse(step.pulls).registry for step in plan.steps if step.pulls}
    if not pulled:
        return plan
    ages = state.get("login_ages") or {}
    stale = tuple(
        login for login in host_logins(fleet, plan.host)
        if login.registry in pulled and login.refresh_after is not None and login.credentials is not None
        and ages.get(login.registry, login.refresh_after) >= login.refresh_after
    )
    return replace(plan, logins=stale) if stale else plan


_PINS: dict[tuple[int, str, str], PinnedTag] = {}


def plan_one_host(fleet: Fleet, host: str, state: ServicesStateValue, prune: bool) -> HostPlan:
    """The plain pyinfra deploy's path (deploy code runs once per host): each tag is still read once per process,
    for each platform, however many hosts there are."""
    platform = state.get("platform")
    if not platform:
        return plan_host(host, state, [], prune)
    pins: dict[str, PinnedTag] = {}
    for spec in placement_of(fleet).services_on(host):
        key = (id(fleet), spec.name, str(platform))
        if key not in _PINS:
            _PINS[key] = pin_services(fleet, {spec.name: {str(platform): [host]}})[spec.name]
        pins[spec.name] = _PINS[key]
    return with_stale_logins(fleet, plan_host(host, state, desired_on_host(fleet, host, str(platform), pins), prune),
                             state)
