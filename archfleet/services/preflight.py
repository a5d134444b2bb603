"""Pre-flight: before any host is touched, each service's tag must hold a verified image for every target
host's platform (the same check as `archfleet images verify`). Each tag is read from the registry once per
sync, for all the platforms its hosts need at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from archfleet.errors import OperationFailed
from archfleet.fleet import Fleet
from archfleet.fleet.services import ServiceSpec
from archfleet.images.verify import verify_tag
from archfleet.platforms import parse as parse_platform
from archfleet.registry_client import parse_reference


class PreflightFailed(OperationFailed):
    """A service's tag lacks a target host's platform (or the platform's image is not what it claims)."""


@dataclass(frozen=True)
class PinnedTag:
    tag: str  # REGISTRY/REPOSITORY:TAG
    repository: str  # REGISTRY/REPOSITORY
    digests: dict[str, str]  # platform -> its verified image manifest digest


def service_reference(fleet: Fleet, spec: ServiceSpec) -> str:
    """The full multi-arch tag a service runs: a declared image's published tag, or the reference as written."""
    registry = fleet.registry.resolve().address
    image = fleet.images.get(spec.image)
    text = image.ref(registry) if image is not None else spec.image
    return str(parse_reference(text, registry))


def pin_services(fleet: Fleet, hosts_by_platform: dict[str, dict[str, list[str]]]) -> dict[str, PinnedTag]:
    """``hosts_by_platform``: service -> platform -> the hosts of that platform it runs on. Returns service ->
    PinnedTag. Raises PreflightFailed naming the tag, a host and what the tag has; nothing was changed then."""
    pinned: dict[str, PinnedTag] = {}
    by_reference: dict[str, list[str]] = {}
    for service in hosts_by_platform:
        by_reference.setdefault(service_reference(fleet, fleet.services[service]), []).append(service)
    for reference, services in by_reference.items():
        needed = sorted({p for s in services for p in hosts_by_platform[s]})
        if not needed:
            continue
        report = verify_tag(fleet.registry, reference, [parse_platform(p) for p in needed])
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
        parsed = parse_reference(reference)
        repository = f"{parsed.registry}/{parsed.repository}" if parsed.registry else parsed.repository
        for service in services:
            pinned[service] = PinnedTag(reference, repository, digests)
    return pinned
