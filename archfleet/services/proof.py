"""Judging the ServiceProof fact: does each declared service run, from the pinned image, built for this host?"""

from __future__ import annotations

from dataclasses import dataclass

from archfleet.facts.service_reads import ServiceProofValue
from archfleet.placement import container_name
from archfleet.platforms import UnknownPlatform, matches
from archfleet.platforms import parse as parse_platform
from archfleet.services.desired import short
from archfleet.table import format_table

OK = "ok"
FAIL = "FAIL"


@dataclass(frozen=True)
class ProofRow:
    host: str
    host_platform: str
    service: str
    state: str
    digest: str
    image_platform: str
    inner_machine: str
    verdict: str
    reason: str


COLUMNS = ("host", "host_platform", "service", "state", "digest", "image_platform", "inner_machine", "verdict")
HEADINGS = ("HOST", "PLATFORM", "SERVICE", "STATE", "DIGEST", "IMAGE", "UNAME -M", "VERDICT")


def judge(host: str, declared: list[str], proof: ServiceProofValue) -> list[ProofRow]:
    """A row per declared service (none for a host that runs no service)."""
    if not declared:
        return []
    if not proof.get("platform"):
        return [ProofRow(host, "?", "-", "-", "-", "-", "-", FAIL,
                         f"unknown host platform (uname -m {proof.get('machine')!r})")]
    platform_text = str(proof["platform"])
    host_platform = parse_platform(platform_text)
    machine = proof.get("machine") or host_platform.machine
    if not proof["engine_running"]:
        return [ProofRow(host, platform_text, "-", "-", "-", "-", "-", FAIL, "the Docker engine does not answer")]
    rows = []
    for service in sorted(declared):
        container = proof["containers"].get(container_name(service))
        if container is None:
            rows.append(ProofRow(host, platform_text, service, "missing", "-", "-", "-", FAIL, "no container"))
            continue
        problems = []
        if container["status"] != "running":
            problems.append(f"container is {container['status']}")
        try:
            image_platform = parse_platform(container["image_platform"])
            if not matches(host_platform, image_platform):
                problems.append(f"image is {image_platform}, host is {host_platform}")
        except UnknownPlatform:
            problems.append(f"image platform {container['image_platform']!r} is unknown")
        if container["status"] == "running" and container["inner_machine"] != machine:
            problems.append(f"uname -m inside is {container['inner_machine']}, host says {machine}")
        if not any(d.endswith("@" + container["digest"]) for d in container["repo_digests"]):
            problems.append(f"the image is not the pinned digest {short(container['digest'])}")
        rows.append(ProofRow(
            host, platform_text, service, container["status"], short(container["digest"]),
            container["image_platform"], container["inner_machine"], FAIL if problems else OK, "; ".join(problems),
        ))
    return rows


def table(rows: list[ProofRow]) -> str:
    lines = [format_table(HEADINGS, [tuple(getattr(r, c) for c in COLUMNS) for r in rows])]
    for row in rows:
        if row.reason:
            lines.append(f"  {row.host} {row.service}: {row.reason}")
    return "\n".join(lines)
