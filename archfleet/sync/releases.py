"""Releases: what a sync that changed a host leaves there, so that a later command can list it and put it back.

A host's finalize (archfleet.sync.rollout, one command: tasks/service_commands.record_release) writes
``/var/lib/archfleet/releases/<run id>.json`` (0600 root, in a 0700 folder): when, who, the command and its
message, the fleet file's sha256 and, per service that runs on the host after this release, everything needed to
create its container again without the fleet file or the registry's tag (image ``REPO@DIGEST``, the ``docker
create`` arguments and command, the managed files' host paths and mounts, never their content, the health check).
Beside it, ``<id>.keep`` lists the file versions and images the release uses, one per line, and one summary line
goes to ``history.jsonl`` (append-only: who changed what, when). The newest ``releases.retain`` records are kept
with their file versions and images; older ones go, with what only they used.

Pure here: the record, its keep list, what a host's read says (``parse_releases_read``), which release a host runs
now and which one a rollback goes back to.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archfleet.facts.service_reads import FILES_ROOT
from archfleet.fleet.rollout import DEFAULT_RETAIN
from archfleet.fleet.services import HealthcheckSpec
from archfleet.operator import RunInfo
from archfleet.placement import container_name
from archfleet.services.desired import DesiredContainer, ManagedFile
from archfleet.sync.outcome import Outcome
from archfleet.sync.scope import timeouts_of

if TYPE_CHECKING:
    from archfleet.fleet import Fleet

RELEASES_DIR = "/var/lib/archfleet/releases"


@dataclass(frozen=True)
class ReleaseContext:
    """What a sync's finalize records on each host it changed."""

    run: RunInfo
    fleet_sha256: str
    retain: int = DEFAULT_RETAIN


def fleet_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def service_entry(desired: DesiredContainer) -> dict[str, Any]:
    """One service of a release: enough to create its container again (no file content, no secret value: the
    environment cannot hold secrets, archfleet.fleet.services refuses them)."""
    check = desired.healthcheck
    return {
        "tag": desired.tag,
        "image": desired.image,
        "digest": desired.digest,
        "spec_hash": desired.spec_hash,
        "create_args": list(desired.create_args),
        "command": list(desired.command),
        "files": [{"host_path": f.host_path, "mount": f.mount, "owner": f.owner, "mode": f.mode,
                   "secret": f.secret} for f in desired.files],
        "healthcheck": None if check is None else {
            "command": check.command, "interval": check.interval, "retries": check.retries,
            "start_period": check.start_period, "timeout": check.timeout},
        "wait_seconds": desired.wait_seconds,
        "stop_order": desired.stop_order,
    }


def release_record(context: ReleaseContext, host: str, platform: str, standing: list[DesiredContainer],
                   now: float | None = None) -> dict[str, Any]:
    run = context.run
    return {
        "id": run.id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now)),
        "operator": run.operator,
        "command": run.command,
        "message": run.message or "",
        "fleet_sha256": context.fleet_sha256,
        "host": host,
        "platform": platform,
        "services": {d.service: service_entry(d) for d in standing},
    }


def history_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The release's line in history.jsonl: who, when, what, and each service's digest and spec."""
    return {
        **{key: record[key] for key in ("id", "time", "operator", "command", "message", "fleet_sha256", "host",
                                        "platform")},
        "services": {name: {"digest": entry["digest"], "spec_hash": entry["spec_hash"], "tag": entry["tag"]}
                     for name, entry in record["services"].items()},
    }


def version_dir(host_path: str) -> str:
    """``/etc/archfleet/services/web/0123abcd/site.conf`` -> ``/etc/archfleet/services/web/0123abcd``."""
    return host_path.rsplit("/", 1)[0]


def keep_lines(standing: list[DesiredContainer]) -> list[str]:
    """What a release keeps on its host while it is retained: its file versions and images, one line each."""
    lines = {f"dir {version_dir(f.host_path)}" for d in standing for f in d.files}
    lines |= {f"image {d.image}" for d in standing}
    return sorted(lines)


def record_arguments(context: ReleaseContext | None, host: str, platform: str,
                     standing: list[DesiredContainer]) -> dict[str, Any]:
    """record_release's values for a host (``context`` None: no record, only the tidying)."""
    if context is None:
        return {"retain": None, "release_id": "", "record": "", "summary": ""}
    record = release_record(context, host, platform, standing)
    return {"retain": context.retain, "release_id": context.run.id,
            "record": json.dumps(record, sort_keys=True, separators=(",", ":")),
            "summary": json.dumps(history_summary(record), sort_keys=True, separators=(",", ":"))}


# ---- reading a host's releases back ----

@dataclass(frozen=True)
class RunningContainer:
    name: str
    status: str
    service: str
    digest: str
    spec_hash: str


@dataclass
class HostReleases:
    """What RELEASES_READ found on one host."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # retained: id -> record
    history: list[dict[str, Any]] = field(default_factory=list)  # every summary line, oldest first
    running: dict[str, RunningContainer] = field(default_factory=dict)  # service -> its container (not -previous)
    images: set[str] = field(default_factory=set)  # REPO@DIGEST the engine holds
    dirs: set[str] = field(default_factory=set)  # file version folders

    def ids(self) -> list[str]:
        """Retained releases in the order they were applied on this host, oldest first: history.jsonl's append
        order (finalize appends under the fleet lock). Not the id's order: an id is its run's start time, and a run
        that started first can take the lock second. A record the read's history no longer reaches is older."""
        position = self.applied_positions()
        return sorted(self.records, key=lambda release: (position.get(release, -1), release))

    def applied_positions(self) -> dict[str, int]:
        """Release id -> its place in history.jsonl (the last line naming it), oldest first."""
        return {line["id"]: index for index, line in enumerate(self.history)}

    def missing(self, entry: dict[str, Any]) -> list[str]:
        """What a release's entry needs that the host no longer has (file versions; the image is pulled again
        when the registry still has it)."""
        return sorted({version_dir(f["host_path"]) for f in entry.get("files", [])} - self.dirs)


def parse_releases_read(lines: list[str]) -> HostReleases:
    found = HostReleases()
    for line in lines:
        key, _, rest = line.partition("=")
        if key in ("record", "history"):
            try:
                value = json.loads(rest)
            except ValueError:
                continue  # a torn line (a host that lost power mid-write) is not a release
            if not isinstance(value, dict) or not isinstance(value.get("id"), str):
                continue
            if key == "record" and isinstance(value.get("services"), dict):
                found.records[value["id"]] = value
            elif key == "history":
                found.history.append(value)
        elif key == "running":
            words = rest.split(" ") + [""] * 5
            name, status, service, digest, spec = words[:5]
            if service and name == container_name(service):
                found.running[service] = RunningContainer(name, status, service, digest, spec)
        elif key == "image" and "@sha256:" in rest:
            found.images.add(rest.strip())
        elif key == "dir" and rest.startswith(FILES_ROOT + "/"):
            found.dirs.add(rest.strip())
    return found


def entry_matches(entry: dict[str, Any] | None, running: RunningContainer | None) -> bool:
    return entry is not None and running is not None and (entry.get("digest"), entry.get("spec_hash")) \
        == (running.digest, running.spec_hash)


def current_release(host: HostReleases, service: str | None) -> str | None:
    """The release the host runs now: for ``service``, the newest retained release whose entry is what its
    container runs (digest and spec); without one, the newest retained release. None: none matches."""
    ids = host.ids()
    if service is None:
        return ids[-1] if ids else None
    running = host.running.get(service)
    for release in reversed(ids):
        if entry_matches(host.records[release]["services"].get(service), running):
            return release
    return None


@dataclass(frozen=True)
class Target:
    """Where a rollback takes one host: a release and its entry for the service."""

    release: str
    entry: dict[str, Any]


def rollback_target(host: HostReleases, service: str, to: str | None) -> Target | str:
    """``to``: that release's entry for ``service``; else the newest retained release before the current one
    whose entry differs from what runs. A str is the reason there is none."""
    if to is not None:
        record = host.records.get(to)
        if record is None:
            known = any(line.get("id") == to for line in host.history)
            return f"release {to} is no longer retained" if known else f"no release {to}"
        entry = record["services"].get(service)
        return Target(to, entry) if entry is not None else f"release {to} has no {service}"
    current = current_release(host, service)
    running = host.running.get(service)
    ids = host.ids()
    before = ids[:ids.index(current)] if current is not None else ids
    for release in reversed(before):
        entry = host.records[release]["services"].get(service)
        if entry is not None and not entry_matches(entry, running):
            return Target(release, entry)
    return f"no retained release of {service} before the one it runs"


def desired_from_entry(service: str, entry: dict[str, Any]) -> DesiredContainer:
    """The container a release's entry describes. Its files' content is not known here: the host must still hold
    them (pipeline.with_files_on_host gives each the host's sha256, so nothing is uploaded)."""
    check = entry.get("healthcheck")
    return DesiredContainer(
        service=service,
        name=container_name(service),
        tag=str(entry["tag"]),
        digest=str(entry["digest"]),
        image=str(entry["image"]),
        create_args=[str(a) for a in entry["create_args"]],
        command=[str(a) for a in entry["command"]],
        files=[ManagedFile(host_path=f["host_path"], mount=f["mount"], content=b"", sha256="",
                           secret=bool(f.get("secret")), owner=f.get("owner", "0:0"), mode=f.get("mode", "0600"))
               for f in entry.get("files", [])],
        spec_hash=str(entry["spec_hash"]),
        healthcheck=None if check is None else HealthcheckSpec(**check),
        wait_seconds=int(entry["wait_seconds"]),
        stop_order=int(entry["stop_order"]),
    )


# ---- the fleet-wide listing ----

@dataclass
class ReleaseRow:
    id: str
    time: str
    operator: str
    command: str
    message: str
    hosts: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # platform -> the service's digest
    current: list[str] = field(default_factory=list)  # hosts that run this release now
    retained: list[str] = field(default_factory=list)  # hosts that can roll back to it (record and files there)

    def as_json(self) -> dict[str, Any]:
        return dict(vars(self))


def release_rows(hosts: dict[str, HostReleases], service: str | None, last: int | None) -> list[ReleaseRow]:
    """One row per release id over every host, newest applied first (``last``: only the newest N); with
    ``service``, only releases that name it. Applied order: the record's time (taken at finalize, under the lock),
    then, within one second, the order a host applied them (its history)."""
    rows: dict[str, ReleaseRow] = {}
    applied: dict[str, int] = {}
    for name, host in sorted(hosts.items()):
        for release, index in enumerate_applied(host):
            applied.setdefault(release, index)
        lines = {line["id"]: line for line in host.history}
        lines.update(host.records)  # a retained record says everything its history line says
        current = current_release(host, service)
        for release, line in lines.items():
            services = line.get("services") or {}
            if service is not None and service not in services:
                continue
            row = rows.setdefault(release, ReleaseRow(release, str(line.get("time", "")),
                                                      str(line.get("operator", "")), str(line.get("command", "")),
                                                      str(line.get("message", ""))))
            row.hosts.append(name)
            if service is not None:
                row.digests[str(line.get("platform", "?"))] = str(services[service].get("digest", ""))
            if release == current:
                row.current.append(name)
            record = host.records.get(release)
            if record is not None and not any(host.missing(entry) for entry in record["services"].values()
                                              if service is None or entry is record["services"].get(service)):
                row.retained.append(name)
    ordered = sorted(rows.values(), key=lambda row: (row.time, applied.get(row.id, -1), row.id), reverse=True)
    return ordered[:last] if last else ordered


def enumerate_applied(host: HostReleases) -> list[tuple[str, int]]:
    """Every release the host names (history and retained records), with its place in the host's applied order."""
    position = host.applied_positions()
    named = sorted(set(position) | set(host.records), key=lambda release: (position.get(release, -1), release))
    return [(release, index) for index, release in enumerate(named)]


# ---- reading every host ----

def releases_fact() -> type:
    """The same read as a pyinfra fact, for hosts only pyinfra reaches (archfleet.sync.read)."""
    from pyinfra.api import FactBase

    from archfleet.tasks.service_commands import RELEASES_READ

    class HostReleasesFact(FactBase):  # type: ignore[type-arg]
        def command(self) -> str:
            return RELEASES_READ

        def process(self, output: list[str]) -> HostReleases:  # type: ignore[override]
            return parse_releases_read(output)

    return HostReleasesFact


def read_releases(fleet: Fleet, names: list[str], say: Callable[[str], None]) -> dict[str, HostReleases | Outcome]:
    """Every named host's releases: one ``ssh`` each, all at once, time-bounded; a host that cannot be read is an
    Outcome with the reason."""
    from archfleet.sync.read import start_reading
    from archfleet.tasks.service_commands import RELEASES_READ

    timeouts = timeouts_of(fleet)
    return start_reading(fleet.hosts, names, what="releases", command=RELEASES_READ, parse=parse_releases_read,
                         fact=releases_fact, connect_timeout=int(timeouts.connect),
                         bound=timeouts.connect + timeouts.facts, say=say)()
