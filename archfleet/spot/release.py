"""A spot fleet's current release in SSM Parameter Store, where a new instance reads it at boot.

The launch template's user-data is the same for every release (``archfleet.spot.user_data.boot_script``); what a
new instance runs comes from the fleet's current release, published by ``spot up`` and by each sync that changes the
fleet's hosts (after its canary passed and its changes stand), so a replacement launched after a sync runs that
sync's release. Under the fleet's ``ssm_prefix`` (String parameters: nothing in them is secret):

- ``release/current``: the current release's id (the run's id, ``archfleet.operator.RunInfo``), written last;
- ``releases/ID/manifest``: JSON: who published it, when, with which command, per architecture the script's sha256
  and each service's image (``REPO@DIGEST``) and spec hash, and the SecureString parameters the scripts read;
- ``releases/ID/ARCH/head``: ``SHA256 PARTS``; ``releases/ID/ARCH/0`` .. ``PARTS-1``: the release script
  (``user_data.release_script``: registries, files, services, watcher), gzip then base64, in Standard-tier chunks.

The secrets stay SecureStrings of their own (``archfleet.spot.joining``), named by the version of their content,
so a release refers to them by name. A release whose scripts equal the current one's is not published again.
An instance tags itself ``archfleet:release=ID`` with the release it boots; old releases (and secrets no kept
release names) are deleted once neither the current release, the one it replaced, nor a live instance's tag
names them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from archfleet.errors import ArchfleetError
from archfleet.fleet import Fleet
from archfleet.fleet.spot import SpotFleetSpec
from archfleet.operator import RunInfo
from archfleet.placement import container_name
from archfleet.services.desired import DesiredContainer, short
from archfleet.services.proof import FAIL, ProofRow
from archfleet.spot.connection import AwsClient, connect, ssm_client
from archfleet.spot.discovery import tagged_instances
from archfleet.spot.fleets import SSM_STANDARD_LIMIT, delete_named_parameters, fleet_parameters, store_parameters
from archfleet.spot.joining import JoiningHost, joining_host
from archfleet.spot.pull_mode import spot_fleet_of_host
from archfleet.spot.user_data import RELEASE_TAG, release_pointer, releases_path

if TYPE_CHECKING:
    from archfleet.images.verify import VerifyReport

RELEASE_ROW = "(release)"  # verify's row of an instance that runs another release than its fleet's current one
PART_CHARS = 4000  # base64 characters per chunk: a Standard-tier String parameter holds 4096
Say = Callable[[str], None]


def packed(script: str) -> list[str]:
    """The release script as chunks: gzip (deterministic) then base64."""
    text = base64.b64encode(gzip.compress(script.encode(), compresslevel=9, mtime=0)).decode()
    return [text[i:i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]


def script_sha256(script: str) -> str:
    return hashlib.sha256(script.encode()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A published release, as its ``manifest`` parameter says."""

    id: str
    document: dict[str, Any]

    @property
    def arches(self) -> dict[str, dict[str, Any]]:
        return dict(self.document.get("arches") or {})

    @property
    def secrets(self) -> set[str]:
        return set(self.document.get("secrets") or [])

    def images(self, arch: str) -> dict[str, str]:
        """service -> REPO@DIGEST on ``arch``."""
        return {name: str(s.get("image")) for name, s in (self.arches.get(arch, {}).get("services") or {}).items()}

    def summary(self) -> str:
        made = self.document
        return (f"release {self.id} ({made.get('command')} by {made.get('operator')}, "
                f"{made.get('published')})")


def manifest_document(spec: SpotFleetSpec, hosts: Sequence[JoiningHost], run: RunInfo) -> dict[str, Any]:
    return {
        "id": run.id, "fleet": spec.name, "operator": run.operator, "command": run.command, "message": run.message,
        "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "arches": {host.arch: {
            "sha256": script_sha256(host.release_script), "parts": len(packed(host.release_script)),
            "services": {c.service: {"image": c.image, "spec": c.spec_hash} for c in host.containers},
        } for host in hosts},
        "secrets": sorted({name for host in hosts for name in host.parameters}),
    }


def release_parameters(spec: SpotFleetSpec, hosts: Sequence[JoiningHost], run: RunInfo) -> dict[str, str]:
    """Every String parameter of a release (name -> value), the manifest last; not the pointer."""
    folder = f"{releases_path(spec.parameter_prefix)}/{run.id}"
    parameters: dict[str, str] = {}
    for host in hosts:
        parts = packed(host.release_script)
        parameters.update({f"{folder}/{host.arch}/{i}": part for i, part in enumerate(parts)})
        parameters[f"{folder}/{host.arch}/head"] = f"{script_sha256(host.release_script)} {len(parts)}"
    parameters[f"{folder}/manifest"] = json.dumps(manifest_document(spec, hosts, run), sort_keys=True)
    return parameters


def _get(ssm: AwsClient, name: str) -> str | None:
    with ssm.errors(f"SSM parameter {name}"):
        try:
            return str(ssm.client.get_parameter(Name=name)["Parameter"]["Value"])
        except ssm.client.exceptions.ParameterNotFound:
            return None


def read_manifest(ssm: AwsClient, spec: SpotFleetSpec, release_id: str) -> Manifest | None:
    text = _get(ssm, f"{releases_path(spec.parameter_prefix)}/{release_id}/manifest")
    return Manifest(release_id, json.loads(text)) if text else None


def current_release(ssm: AwsClient, spec: SpotFleetSpec) -> Manifest | None:
    """The fleet's current release (None: none published, e.g. a fleet without user-data)."""
    release_id = _get(ssm, release_pointer(spec.parameter_prefix))
    if not release_id:
        return None
    return read_manifest(ssm, spec, release_id.strip()) or Manifest(release_id.strip(), {})


def _put(ssm: AwsClient, spec: SpotFleetSpec, name: str, value: str, description: str) -> None:
    with ssm.errors(f"spot fleet {spec.name}: SSM parameter {name}"):
        ssm.client.put_parameter(Name=name, Value=value, Type="String", Overwrite=True, Description=description,
                                 Tier="Advanced" if len(value) > SSM_STANDARD_LIMIT else "Standard")


def publish(ec2: AwsClient, spec: SpotFleetSpec, hosts: Sequence[JoiningHost], run: RunInfo,
            dry: bool = False) -> list[str]:
    """Write the secrets a release reads, then (unless its scripts equal the current release's) the release and
    last the pointer to it; then prune. The changes, one line each (``dry``: what would change, nothing written)."""
    ssm = ssm_client(ec2, f"spot fleet {spec.name}: its release")
    current = current_release(ssm, spec)
    changes: list[str] = []
    if not dry:
        secrets = {name: value for host in hosts for name, value in host.parameters.items()}
        changes += [f"write SecureString {name}" for name in store_parameters(ec2, spec, secrets)]
    wanted = {host.arch: script_sha256(host.release_script) for host in hosts}
    if current is not None and {arch: a.get("sha256") for arch, a in current.arches.items()} == wanted:
        return changes  # the current release already runs exactly this
    described = "; ".join(f"{host.arch}: {', '.join(f'{c.service} {c.digest[:19]}' for c in host.containers) or '-'}"
                          for host in hosts)
    changes.append(f"publish release {run.id} ({described})" + (f", replacing {current.id}" if current else ""))
    if dry:
        return changes
    about = f"archfleet spot fleet {spec.name}: release {run.id}, read by new instances at boot"
    for name, value in release_parameters(spec, hosts, run).items():
        _put(ssm, spec, name, value, about)
    _put(ssm, spec, release_pointer(spec.parameter_prefix), run.id,
         f"archfleet spot fleet {spec.name}: the release new instances boot")
    kept = {run.id} | ({current.id} if current else set())
    changes += [f"delete {line}" for line in prune(ec2, ssm, spec, kept)]
    return changes


def prune(ec2: AwsClient, ssm: AwsClient, spec: SpotFleetSpec, kept: set[str]) -> list[str]:
    """Delete the releases that neither ``kept`` (the current one, the one it replaced) nor a live instance's tag
    names, and the SecureStrings no kept release reads. What was deleted, one line per release or parameter."""
    live = tagged_instances(ec2, spec.name, ("pending", "running"))
    kept = kept | {row.tags[RELEASE_TAG] for row in live if row.tags.get(RELEASE_TAG)}
    folder = releases_path(spec.parameter_prefix) + "/"
    pointer = release_pointer(spec.parameter_prefix)
    names = fleet_parameters(ec2, spec)
    manifests = [m for m in (read_manifest(ssm, spec, release_id) for release_id in sorted(kept)) if m is not None]
    read = set().union(*(m.secrets for m in manifests)) if manifests else set()
    stale_releases: dict[str, list[str]] = {}
    stale_secrets: list[str] = []
    for name in names:
        if name.startswith(folder):
            release_id = name[len(folder):].split("/", 1)[0]
            if release_id not in kept:
                stale_releases.setdefault(release_id, []).append(name)
        elif name != pointer and name not in read:
            stale_secrets.append(name)
    delete_named_parameters(ec2, spec, [n for group in stale_releases.values() for n in group] + stale_secrets,
                            "no release uses")
    return ([f"release {release_id} (no instance booted it, not current)" for release_id in sorted(stale_releases)]
            + [f"SecureString {name} (no release uses it)" for name in stale_secrets])


# --- after a sync ------------------------------------------------------------------------------------------------

UPDATED = "updated"  # archfleet.sync.report.UPDATED: spot/ sits below sync/, so the word, not the import


class _Step(Protocol):
    @property
    def desired(self) -> DesiredContainer | None: ...


class _Plan(Protocol):
    @property
    def platform(self) -> str: ...

    @property
    def changed(self) -> bool: ...

    @property
    def steps(self) -> Sequence[_Step]: ...

    @property
    def unchanged(self) -> Sequence[_Step]: ...


class _HostEntry(Protocol):
    status: str
    reason: str


class _Report(Protocol):
    @property
    def hosts(self) -> Mapping[str, _HostEntry]: ...

    @property
    def ok(self) -> bool: ...


def fleet_of_host(fleet: Fleet, host: str) -> SpotFleetSpec | None:
    """The user-data spot fleet a host of the inventory is an instance of."""
    spec = spot_fleet_of_host(fleet, host)
    return spec if spec is not None and spec.user_data else None


def publish_after_sync(fleet: Fleet, plans: Mapping[str, _Plan], report: _Report,
                       reports: dict[str, VerifyReport] | None, run: RunInfo, say: Say) -> None:
    """After a sync's rollout: each user-data spot fleet whose hosts it changed gets the release those hosts now
    run, unless anything failed or was rolled back (then nothing is published). A failed publication marks the
    fleet's changed hosts failed (a replacement would boot the old release). Pull-mode fleets: ``pull_mode``."""
    from archfleet.spot.pull_mode import publish_pull_fleets

    publish_pull_fleets(fleet, plans, report, reports, run, say)
    changed: dict[str, list[str]] = {}
    for host, plan in sorted(plans.items()):
        spec = fleet_of_host(fleet, host) if plan.changed else None
        if spec is not None:
            changed.setdefault(spec.name, []).append(host)
    if not changed:
        return
    if not report.ok or any(report.hosts[host].status != UPDATED for hosts in changed.values() for host in hosts):
        for name in sorted(changed):
            say(f"sync: spot fleet {name}: no release published (the sync failed or rolled back somewhere)")
        return
    for name, hosts in sorted(changed.items()):
        spec = fleet.spot_fleets[name]
        try:
            ec2 = connect(spec.region, spec.where)
            current = current_release(ssm_client(ec2, f"spot fleet {name}: its release"), spec)
            if current is None:
                say(f"sync: spot fleet {name}: no release published yet: `archfleet spot up {name}` publishes one")
                continue
            deployed: dict[str, dict[str, DesiredContainer]] = {}
            for host, plan in sorted(plans.items()):
                if fleet_of_host(fleet, host) is spec and plan.platform.startswith("linux/"):
                    arch = plan.platform.split("/")[1]
                    for step in (*plan.steps, *plan.unchanged):
                        if step.desired is not None:
                            deployed.setdefault(arch, {}).setdefault(step.desired.service, step.desired)
            arches = sorted(current.arches) or sorted(deployed)
            joining = [joining_host(fleet, spec, arch, ec2, reports, deployed.get(arch)) for arch in arches]
            lines = publish(ec2, spec, joining, run)
            if not any(line.startswith("publish ") for line in lines):
                lines.append(f"release {current.id} stays current (the same services)")
            for line in lines:
                say(f"sync: spot fleet {name}: {line}")
        except ArchfleetError as error:
            reason = f"its spot fleet {name}'s release was not published (a replacement boots the old one): {error}"
            say(f"sync: spot fleet {name}: FAILED: {reason}")
            for host in hosts:
                report.hosts[host].status, report.hosts[host].reason = "failed", reason


# --- verify ------------------------------------------------------------------------------------------------------


def release_rows(fleet: Fleet, proofs: Mapping[str, object]) -> list[ProofRow]:
    """``archfleet verify``'s rows for instances of user-data spot fleets that run another release than their
    fleet's current one: a service whose digest differs from the release's, or missing (one FAIL row per such
    host). ``proofs``: host -> the ServiceProof value (anything else: unreachable, judged elsewhere)."""
    by_fleet: dict[str, list[str]] = {}
    for host, proof in sorted(proofs.items()):
        spec = fleet_of_host(fleet, host)
        if spec is not None and isinstance(proof, dict) and str(proof.get("platform") or "").startswith("linux/"):
            by_fleet.setdefault(spec.name, []).append(host)
    rows: list[ProofRow] = []
    for name, hosts in sorted(by_fleet.items()):
        spec = fleet.spot_fleets[name]
        try:
            current = current_release(ssm_client(connect(spec.region, spec.where), f"spot fleet {name}"), spec)
        except ArchfleetError as error:
            rows += [ProofRow(host, "?", RELEASE_ROW, "-", "-", "-", "-", FAIL,
                              f"cannot read spot fleet {name}'s current release: {error}") for host in hosts]
            continue
        if current is None:
            continue
        for host in hosts:
            value: Any = proofs[host]
            platform = str(value["platform"])
            containers = value.get("containers") or {}
            differences = []
            for service, image in sorted(current.images(platform.split("/")[1]).items()):
                running = containers.get(container_name(service))
                if running is None:
                    differences.append(f"{service} missing")
                elif not image.endswith("@" + str(running.get("digest"))):
                    differences.append(f"{service} runs {short(str(running.get('digest')))}, the release pins "
                                       f"{short(image.rsplit('@', 1)[-1])}")
            if differences:
                rows.append(ProofRow(host, platform, RELEASE_ROW, "-", "-", "-", "-", FAIL,
                                     f"runs another release than spot fleet {name}'s current {current.id} "
                                     f"({'; '.join(differences)}): `archfleet sync` brings it to it"))
    return rows
