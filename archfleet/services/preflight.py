"""Pre-flight: before any host is touched, each service's tag must hold a verified image for every target
host's platform (the same check as `archfleet images verify`). Results are cached for the whole run, so each
tag is read from the registry once per platform, however many hosts there are.
"""

from __future__ import annotations

from dataclasses import dataclass

from archfleet.errors import OperationFailed
from archfleet.fleet import Fleet
from archfleet.fleet.services import ServiceSpec
from archfleet.images.verify import verify_tag
from archfleet.platforms import Platform
from archfleet.registry_client import parse_reference


class PreflightFailed(OperationFailed):
    """A service's tag lacks a target host's platform (or the platform's image is not what it claims)."""


@dataclass(frozen=True)
class PinnedImage:
    tag: str  # REGISTRY/REPOSITORY:TAG
    repository: str  # REGISTRY/REPOSITORY
    digest: str  # the host platform's image manifest digest


def service_reference(fleet: Fleet, spec: ServiceSpec) -> str:
    """The full multi-arch tag a service runs: a declared image's published tag, or the reference as written."""
    registry = fleet.registry.resolve().address
    image = fleet.images.get(spec.image)
    text = image.ref(registry) if image is not None else spec.image
    return str(parse_reference(text, registry))


_VERIFIED: dict[tuple[str, str], tuple[bool, str, str | None, str]] = {}
_SECRETS: dict[tuple[int, str], dict[str, str]] = {}


def _verified(fleet: Fleet, reference: str, platform: Platform) -> tuple[bool, str, str | None, str]:
    key = (reference, str(platform))
    if key not in _VERIFIED:
        report = verify_tag(fleet.registry, reference, [platform])
        present = sorted({c.platform for c in report.checks if c.verdict != "missing"} | set(report.extra))
        digest = report.digests().get(str(platform))
        _VERIFIED[key] = (report.ok, report.summary(), digest, ", ".join(present) or "none")
    return _VERIFIED[key]


def pin_image(fleet: Fleet, spec: ServiceSpec, host_name: str, platform: Platform) -> PinnedImage:
    """This host's image for the service, verified; PreflightFailed names the tag, the host and what the tag has."""
    reference = service_reference(fleet, spec)
    ok, summary, digest, present = _verified(fleet, reference, platform)
    if not ok or digest is None:
        raise PreflightFailed(
            f"pre-flight: {reference} has no verified {platform} image for host {host_name} "
            f"(the tag has: {present}; {summary}); nothing was changed"
        )
    parsed = parse_reference(reference)
    repository = f"{parsed.registry}/{parsed.repository}" if parsed.registry else parsed.repository
    return PinnedImage(tag=reference, repository=repository, digest=digest)


def secret_values(fleet: Fleet, spec: ServiceSpec) -> dict[str, str]:
    """The service's secrets, read once per run from their local files or environment variables."""
    key = (id(fleet), spec.name)
    if key not in _SECRETS:
        _SECRETS[key] = {secret.name: secret.read() for secret in spec.secrets}
    return _SECRETS[key]

