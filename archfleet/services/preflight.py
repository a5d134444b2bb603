"""Pre-flight: before any host is touched, each service's tag must hold a verified image for every target
host's platform (the same check as `archfleet images verify`). Each tag is read from the registry once per
sync, for all the platforms its hosts need at once, from whichever registry it is in (the fleet's own, Docker
Hub, GHCR, ECR...), with that registry's credentials (archfleet.credentials).
"""

from __future__ import annotations

from dataclasses import dataclass

from archfleet.errors import ArchfleetError, OperationFailed
from archfleet.fleet import Fleet, service_reference
from archfleet.fleet.services import ServiceSpec
from archfleet.images.verify import DEFAULT_PLATFORMS, VerifyReport, verify_with_client
from archfleet.platforms import parse as parse_platform
from archfleet.references import parse
from archfleet.registry_client import client_for


class PreflightFailed(OperationFailed):
    """A service's tag lacks a target host's platform (or the platform's image is not what it claims)."""


@dataclass(frozen=True)
class PinnedTag:
    tag: str  # REGISTRY/REPOSITORY:TAG
    repository: str  # REGISTRY/REPOSITORY
    digests: dict[str, str]  # platform -> its verified image manifest digest


def verify_reference(fleet: Fleet, reference: str, platforms: list[str]) -> VerifyReport:
    """The tag read from its own registry, with that registry's credentials (archfleet.credentials)."""
    parsed = parse(reference)
    return verify_with_client(client_for(parsed.registry, fleet), parsed, [parse_platform(p) for p in platforms])


def expected_platforms(fleet: Fleet, spec: ServiceSpec) -> list[str]:
    """The platforms a service's tag is expected to have: its fleet image's, else linux/amd64 and linux/arm64."""
    image = fleet.images.get(spec.image)
    platforms = getattr(image, "platforms", None) or DEFAULT_PLATFORMS
    return sorted({str(p) for p in platforms})


def prefetch_reports(fleet: Fleet, services: list[str]) -> dict[str, VerifyReport]:
    """Each tag verified for the platforms it is expected to have, before the hosts' platforms are known (so that
    the registry is read while the hosts are): reference -> report. Failures are left to pin_services."""
    reports: dict[str, VerifyReport] = {}
    for service in services:
        spec = fleet.services[service]
        reference = service_reference(fleet, spec)
        if reference not in reports:
            try:
                reports[reference] = verify_reference(fleet, reference, expected_platforms(fleet, spec))
            except ArchfleetError:
                continue
    return reports


def pin_services(fleet: Fleet, hosts_by_platform: dict[str, dict[str, list[str]]],
                 reports: dict[str, VerifyReport] | None = None) -> dict[str, PinnedTag]:
    """``hosts_by_platform``: service -> platform -> the hosts of that platform it runs on; ``reports``: tags already
    read (prefetch_reports), used when they cover the platforms needed. Returns service -> PinnedTag. Raises
    PreflightFailed naming the tag, a host and what the tag has; nothing was changed then."""
    pinned: dict[str, PinnedTag] = {}
    by_reference: dict[str, list[str]] = {}
    for service in hosts_by_platform:
        by_reference.setdefault(service_reference(fleet, fleet.services[service]), []).append(service)
    for reference, services in by_reference.items():
        needed = sorted({p for s in services for p in hosts_by_platform[s]})
        if not needed:
            continue
        parsed = parse(reference)
        report = (reports or {}).get(reference)
        if report is None or not set(needed) <= {c.platform for c in report.checks}:
            report = verify_reference(fleet, reference, needed)
        digests = report.digests()
        present = sorted({c.platform for c in report.checks if c.verdict != "missing"} | set(report.extra))
        for service in services:
            for platform, hosts in sorted(hosts_by_platform[service].items()):
                check = next((c for c in report.checks if c.platform == platform), None)
                if report.index_digest is None or check is None or check.verdict != "ok" or platform not in digests:
                    raise PreflightFailed(
                        f"pre-flight: {reference} has no verified {platform} image for host {sorted(hosts)[0]} "
                        f"(the tag has: {', '.join(present) or 'none'}; {report.summary()}); nothing was changed"
                    )
        for service in services:
            pinned[service] = PinnedTag(reference, parsed.name, digests)
    return pinned
