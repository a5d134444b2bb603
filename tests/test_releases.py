"""The pure parts of releases (archfleet.sync.releases): the record and its keep list, what a host's read says,
which release a host runs and which one a rollback goes back to, the fleet-wide listing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from archfleet.fleet.services import HealthcheckSpec
from archfleet.operator import RunInfo
from archfleet.services.desired import DesiredContainer, ManagedFile
from archfleet.sync.releases import (
    HostReleases,
    ReleaseContext,
    Target,
    current_release,
    desired_from_entry,
    keep_lines,
    parse_releases_read,
    record_arguments,
    release_record,
    release_rows,
    rollback_target,
    service_entry,
)

SECRET = "0f1e2d3c-secret-value"


def container(digest: str = "sha256:aaaa", version: str = "0123456789abcdef", spec: str = "spec1") -> DesiredContainer:
    return DesiredContainer(
        service="web", name="archfleet-web", tag="r.example/web:1", digest=digest, image=f"r.example/web@{digest}",
        create_args=["--network", "host", "--env", "MODE=live"], command=["serve"],
        files=[ManagedFile(f"/etc/archfleet/services/web/{version}/token", "/run/secrets/token", SECRET.encode(),
                           "f" * 64, True)],
        spec_hash=spec, healthcheck=HealthcheckSpec("true", 1, 3, 0, 5), wait_seconds=20, stop_order=0)


def entry(digest: str, spec: str = "spec1", version: str = "0123456789abcdef") -> dict[str, Any]:
    return service_entry(container(digest, version, spec))


def host(*releases: tuple[str, dict[str, Any]], running: tuple[str, str] | None = None,
         dirs: tuple[str, ...] = ("/etc/archfleet/services/web/0123456789abcdef",)) -> HostReleases:
    lines = [f"record={json.dumps({'id': rid, 'platform': 'linux/arm64', 'services': {'web': e}})}"
             for rid, e in releases]
    if running:
        lines.append(f"running=archfleet-web running web {running[0]} {running[1]}")
    lines += [f"dir={d}" for d in dirs]
    return parse_releases_read(lines)


def test_a_record_holds_what_recreates_the_container_and_no_secret() -> None:
    run = RunInfo("sync", "first", id="20261208T010000Z-abcd", operator="ops@laptop")
    record = release_record(ReleaseContext(run, "9" * 64), "arm-1", "linux/arm64", [container()], now=0)
    text = json.dumps(record)
    assert SECRET not in text and "f" * 64 not in text, "no content, no content hash"
    web = record["services"]["web"]
    assert (record["id"], record["operator"], record["message"], record["time"]) == (
        "20261208T010000Z-abcd", "ops@laptop", "first", "1970-01-01T00:00:00Z")
    assert desired_from_entry("web", web) == DesiredContainer(**{
        **vars(container()), "files": [ManagedFile("/etc/archfleet/services/web/0123456789abcdef/token",
                                                   "/run/secrets/token", b"", "", True)]})
    arguments = record_arguments(ReleaseContext(run, "9" * 64, retain=5), "arm-1", "linux/arm64", [container()])
    assert arguments["retain"] == 5 and arguments["release_id"] == run.id
    assert json.loads(arguments["summary"])["services"] == {"web": {"digest": "sha256:aaaa", "spec_hash": "spec1",
                                                                    "tag": "r.example/web:1"}}
    assert record_arguments(None, "arm-1", "linux/arm64", [container()])["release_id"] == ""


def test_keep_lines_name_each_file_version_and_image_once() -> None:
    assert keep_lines([container(), container()]) == [
        "dir /etc/archfleet/services/web/0123456789abcdef", "image r.example/web@sha256:aaaa"]


def test_the_read_ignores_torn_lines_and_previous_containers() -> None:
    found = parse_releases_read([
        'record={"id": "a", "services": {}}', "record={torn", 'history={"id": "a"}', "history=[1]",
        "running=archfleet-web-previous exited web sha256:old s", "running=archfleet-web running web sha256:new s",
        "image=r.example/web@sha256:new", "image=<none>@<none>", "dir=/etc/archfleet/services/web/v1", "dir=/tmp/x"])
    assert list(found.records) == ["a"] and [h["id"] for h in found.history] == ["a"]
    assert found.running["web"].digest == "sha256:new" and found.images == {"r.example/web@sha256:new"}
    assert found.dirs == {"/etc/archfleet/services/web/v1"}


def test_current_release_is_the_newest_whose_entry_runs() -> None:
    releases = (("r1", entry("sha256:one")), ("r2", entry("sha256:two")), ("r3", entry("sha256:one")))
    assert current_release(host(*releases, running=("sha256:one", "spec1")), "web") == "r3"
    assert current_release(host(*releases, running=("sha256:two", "spec1")), "web") == "r2"
    assert current_release(host(*releases, running=("sha256:two", "other")), "web") is None, "a drifted container"
    assert current_release(host(*releases), None) == "r3"


@pytest.mark.parametrize(("running", "to", "expected"), [
    (("sha256:three", "spec1"), None, "r2"),  # the one before
    (("sha256:two", "spec1"), None, "r1"),  # after a rollback to r2 (running matches r2): the one before r2
    (("sha256:one", "spec1"), None, "no retained release of web before the one it runs"),
    (("sha256:three", "spec1"), "r1", "r1"),
    (("sha256:three", "spec1"), "r0", "release r0 is no longer retained"),
    (("sha256:three", "spec1"), "r9", "no release r9"),
    (("sha256:zzz", "spec1"), None, "r3"),  # nothing recorded matches what runs: the newest that differs
])
def test_rollback_target(running: tuple[str, str], to: str | None, expected: str) -> None:
    releases = host(("r1", entry("sha256:one")), ("r2", entry("sha256:two")), ("r3", entry("sha256:three")),
                    running=running)
    releases.history.append({"id": "r0"})
    target = rollback_target(releases, "web", to)
    assert (target.release if isinstance(target, Target) else target) == expected


def test_a_release_that_only_changed_the_spec_differs() -> None:
    releases = host(("r1", entry("sha256:one", "old")), ("r2", entry("sha256:one", "new")),
                    running=("sha256:one", "new"))
    target = rollback_target(releases, "web", None)
    assert isinstance(target, Target) and target.release == "r1"


def test_missing_file_versions_are_named() -> None:
    gone = entry("sha256:one", version="feedfacefeedface")
    assert host(("r1", gone)).missing(gone) == ["/etc/archfleet/services/web/feedfacefeedface"]
    assert host(("r1", entry("sha256:one"))).missing(entry("sha256:one")) == []


def test_the_listing_groups_hosts_by_release_newest_first() -> None:
    a = host(("r1", entry("sha256:one")), ("r2", entry("sha256:two")), running=("sha256:two", "spec1"))
    b = host(("r2", entry("sha256:two")), running=("sha256:two", "spec1"), dirs=())
    b.history.append({"id": "r1", "time": "t", "platform": "linux/amd64", "services": {"web": entry("sha256:o")}})
    rows = release_rows({"a": a, "b": b}, "web", None)
    assert [row.id for row in rows] == ["r2", "r1"]
    assert rows[0].hosts == ["a", "b"] and rows[0].current == ["a", "b"] and rows[0].retained == ["a"]
    assert rows[1].hosts == ["a", "b"] and rows[1].current == [] and rows[1].retained == ["a"]
    assert rows[1].digests == {"linux/arm64": "sha256:one", "linux/amd64": "sha256:o"}
    assert [row.id for row in release_rows({"a": a}, "web", 1)] == ["r2"]
    assert release_rows({"a": a}, "other", None) == []


def test_releases_follow_the_order_the_host_applied_them_not_the_id() -> None:
    """Two runs started in the same second: the one whose id sorts first took the lock second (day two, bug 1).
    The running one, the rollback target and the listing follow history.jsonl's order."""
    first_applied, second_applied = "20261208T034329Z-9a8d", "20261208T034329Z-6b21"
    found = host((first_applied, entry("sha256:aaaa")), (second_applied, entry("sha256:bbbb")),
                 running=("sha256:bbbb", "spec1"))
    found.history = [{"id": first_applied, "time": "2026-12-08T03:43:38Z"},
                     {"id": second_applied, "time": "2026-12-08T03:43:38Z"}]
    assert found.ids() == [first_applied, second_applied]
    assert current_release(found, None) == second_applied
    assert current_release(found, "web") == second_applied
    target = rollback_target(found, "web", None)
    assert isinstance(target, Target) and target.release == first_applied, target
    rows = release_rows({"arm-1": found}, None, None)
    assert [row.id for row in rows] == [second_applied, first_applied]
    assert rows[0].current == ["arm-1"] and rows[1].current == []
