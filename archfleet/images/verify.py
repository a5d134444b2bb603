"""Proving what is behind a tag: every required platform is there, and each entry really is that platform.

    report = verify_tag(fleet.registry.resolve(), "archfleet/v2ray:latest", ["linux/amd64", "linux/arm64"])
    if not report.ok:
        raise OperationFailed(report.summary())

The check reads the index from the registry, ignores attestation entries (``vnd.docker.reference.type``,
``unknown/unknown``), and for each required platform reads the image CONFIG blob of its entry: an amd64 image
pushed under the arm64 entry says ``architecture: amd64`` there and is reported as a mismatch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from archfleet.fleet.registry import RegistrySpec
from archfleet.platforms import Platform
from archfleet.platforms import parse as parse_platform
from archfleet.registry_client import (
    NotFound,
    Reference,
    RegistryClient,
    client_for,
    config_platform,
    image_size,
    parse_index,
    parse_reference,
)
from archfleet.table import format_table

DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64")
OK, MISSING, MISMATCH = "ok", "missing", "mismatch"


@dataclass(frozen=True)
class PlatformCheck:
    platform: str  # the required platform, OCI form
    verdict: str  # "ok", "missing" or "mismatch"
    digest: str | None = None  # the entry's image manifest digest (pull by REPO@DIGEST)
    size: int = 0  # compressed size: config + layers
    actual: str | None = None  # the platform the entry's image config says

    @property
    def detail(self) -> str:
        if self.verdict == MISMATCH:
            return f"mismatch: config says {self.actual}"
        return self.verdict


@dataclass
class VerifyReport:
    reference: str  # the full reference checked, REGISTRY/REPOSITORY:TAG
    index_digest: str | None = None  # digest of the tag's manifest list / index (None: the tag is missing)
    checks: list[PlatformCheck] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # platforms present but not required

    @property
    def ok(self) -> bool:
        return self.index_digest is not None and all(c.verdict == OK for c in self.checks)

    def digests(self) -> dict[str, str]:
        """``platform -> digest`` of the checked entries (for pulling by digest)."""
        return {c.platform: c.digest for c in self.checks if c.digest}

    def summary(self) -> str:
        """One line: ``REF: ok`` or ``REF: linux/arm64 missing, ...``."""
        if self.index_digest is None:
            return f"{self.reference}: tag not found"
        bad = [f"{c.platform} {c.detail}" for c in self.checks if c.verdict != OK]
        return f"{self.reference}: " + (", ".join(bad) if bad else "ok")

    def as_json(self) -> dict[str, Any]:
        """The report as `archfleet images verify --json` prints it: the tag's digest, and per required platform
        its entry's digest, compressed size, the platform its config says, and the verdict."""
        return {
            "reference": self.reference,
            "digest": self.index_digest,
            "ok": self.ok,
            "platforms": [
                {"platform": c.platform, "verdict": c.verdict, "digest": c.digest,
                 "size": c.size if c.digest else None, "config_platform": c.actual if c.digest else None}
                for c in self.checks
            ],
            "not_required": list(self.extra),
        }

    def table(self) -> str:
        """The table `archfleet images verify` prints: platform, digest, size, verdict."""
        rows = [(c.platform, c.digest or "-", human_size(c.size) if c.digest else "-", c.detail) for c in self.checks]
        rows += [(platform, "", "", "not required") for platform in self.extra]
        return format_table(("PLATFORM", "DIGEST", "SIZE", "VERDICT"), rows)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def verify_with_client(client: RegistryClient, ref: str | Reference,
                       platforms: Sequence[str | Platform] = DEFAULT_PLATFORMS) -> VerifyReport:
    """:func:`verify_tag` with a client already made (tests, and callers checking several tags)."""
    reference = parse_reference(ref, client.address) if isinstance(ref, str) else ref
    wanted = [p if isinstance(p, Platform) else parse_platform(p) for p in platforms]
    report = VerifyReport(str(reference))
    try:
        top = client.manifest(reference.repository, reference.reference)
    except NotFound:
        report.checks = [PlatformCheck(str(p), MISSING) for p in wanted]
        return report
    report.index_digest = top.digest
    if top.is_index:
        candidates: list[tuple[Platform | None, str]] = [
            (e.platform, e.digest) for e in parse_index(top.json) if e.is_image
        ]
    else:  # a single-platform image under the tag: its config says which platform it is
        candidates = [(config_platform(client.config(reference.repository, top)), top.digest)]
    for platform in wanted:
        found = [digest for offered, digest in candidates if offered == platform]
        if not found:
            report.checks.append(PlatformCheck(str(platform), MISSING))
            continue
        manifest = client.manifest(reference.repository, found[0])
        actual = config_platform(client.config(reference.repository, manifest))
        verdict = OK if actual == platform else MISMATCH
        report.checks.append(PlatformCheck(str(platform), verdict, found[0], image_size(manifest.json), str(actual)))
    report.extra = sorted({str(p) for p, _ in candidates if p and p not in wanted})
    return report


def verify_tag(registry: RegistrySpec, ref: str, platforms: Sequence[str | Platform] = DEFAULT_PLATFORMS
               ) -> VerifyReport:
    """Check the tag ``ref`` (``[REGISTRY/]REPOSITORY[:TAG]``; the registry defaults to ``registry``'s address).

    ``registry`` is the fleet's registry section (``lab: true`` is resolved here). Every platform in
    ``platforms`` must have an entry whose image config has that os/architecture(/variant). Returns the report
    (``report.ok``, ``report.table()``, ``report.digests()``); raises OperationFailed only when the registry
    cannot be reached or answers with an error other than "not found".
    """
    own = registry.resolve()
    client = client_for(parse_reference(ref, own.address).registry, own)  # any registry, with its credentials
    return verify_with_client(client, ref, platforms)
