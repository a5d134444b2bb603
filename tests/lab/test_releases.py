"""Releases and rollback on the lab (docs/releases.md): every sync that changes a host records a release there;
`archfleet releases` lists them fleet-wide; `archfleet rollback` puts an earlier one back by digest, through the
sync's own rollout, even after the tag moved and the registry lost the old image; retention keeps the newest N
releases' images and file versions on each host and removes the rest.

One module-scoped fleet: `keeper`, from a tag these tests move between builds (tests/lab/test_services.py's
`publish_mover`), with a rendered file that changes from release to release and a generated secret. The tests run
in order, each starting from where the one before left the hosts.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from archfleet.lab.state import LabHost, LabState
from archfleet.tasks.lock_commands import release_lock, take_lock
from archfleet.tasks.service_commands import rollback_container
from tests.lab.support import BIN, LAB_INVENTORY, PROJECT, HostBootstrap, archfleet, on_host, remove_every_service
from tests.lab.test_services import MOVER, publish_mover

pytestmark = pytest.mark.lab

RELEASES = "/var/lib/archfleet/releases"
FLEET = """\
registry: {{lab: true}}
inventory: {inventory}
{releases}services:
  keeper:
    image: {registry}/{mover}:live
    groups: [amd64, arm64]
    command: [sleep, infinity]
    files: [{{template: note.j2, mount: /etc/keeper/note}}]
    vars: {{note: {note}}}
    secrets: {{token: {{file: keeper-token, generate: token}}}}
    healthcheck: {{command: "test -s /etc/keeper/note", interval: 1, retries: 3}}
"""


class Fleet:
    def __init__(self, directory: Path, lab: LabState):
        self.directory = directory
        self.lab = lab
        self.path = directory / "fleet.yaml"
        (directory / "note.j2").write_text("{{ note }}\n")
        self.write("one")

    def write(self, note: str, retain: int | None = None) -> None:
        releases = f"releases: {{retain: {retain}}}\n" if retain else ""
        self.path.write_text(FLEET.format(inventory=LAB_INVENTORY, releases=releases, note=note,
                                          registry=self.lab.registry.address, mover=MOVER))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return archfleet(*args, "-f", str(self.path))

    def hosts(self) -> list[LabHost]:
        return self.lab.hosts_of("amd64") + self.lab.hosts_of("arm64")


def image_digests(host: LabHost) -> set[str]:
    """The REPO@DIGEST names of the image `archfleet-keeper` runs, as the host's engine says."""
    result = on_host(host, "docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "
                           "$(docker inspect --format '{{.Image}}' archfleet-keeper)")
    assert result.returncode == 0, result.stderr
    return {line for line in result.stdout.split() if line}


def running(fleet: Fleet) -> dict[str, tuple[str, set[str]]]:
    """host -> (the container's id, its image's repo digests)."""
    found = {}
    for host in fleet.hosts():
        cid = on_host(host, "docker inspect --format '{{.Id}}' archfleet-keeper").stdout.strip()
        found[host.name] = (cid, image_digests(host))
    return found


def records(host: LabHost) -> dict[str, dict[str, Any]]:
    result = on_host(host, f"for f in {RELEASES}/*.json; do [ -f \"$f\" ] && cat \"$f\"; done; true")
    found = {}
    for line in result.stdout.splitlines():
        if line.strip():
            record = json.loads(line)
            found[record["id"]] = record
    return found


def newest_release(fleet: Fleet) -> str:
    ids = {host.name: max(records(host)) for host in fleet.hosts()}
    assert len(set(ids.values())) == 1, ids
    return next(iter(ids.values()))


def listing(fleet: Fleet, *args: str) -> dict[str, Any]:
    result = fleet.run("releases", "keeper", "--json", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def sync_changes(fleet: Fleet) -> str:
    """A sync that changes every host, then one that changes nothing and records nothing: the new release's id."""
    before = {host.name: set(records(host)) for host in fleet.hosts()}
    first = fleet.run("sync")
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    release = newest_release(fleet)
    assert all(release not in ids for ids in before.values())
    second = fleet.run("sync")
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    assert "0 updated" in second.stdout and newest_release(fleet) == release, second.stdout
    return release


@pytest.fixture(scope="module")
def fleet(lab: LabState, tmp_path_factory: pytest.TempPathFactory, host_bootstrap: HostBootstrap) -> Iterator[Fleet]:
    host_bootstrap.ensure()
    publish_mover(lab, "1")
    fleet = Fleet(tmp_path_factory.mktemp("releases"), lab)
    yield fleet
    remove_every_service(fleet.directory)
    for host in fleet.hosts():
        on_host(host, f"rm -rf {RELEASES}")


class Seen:
    """What the tests saw on the hosts, release by release (module-wide: the tests run in order)."""

    releases: ClassVar[dict[str, str]] = {}  # name -> release id
    digests: ClassVar[dict[str, dict[str, set[str]]]] = {}  # name -> host -> the running image's repo digests


def test_two_releases_are_recorded_and_listed_with_the_current_one_marked(fleet: Fleet) -> None:
    Seen.releases["one"] = sync_changes(fleet)
    Seen.digests["one"] = {h: d for h, (_, d) in running(fleet).items()}
    publish_mover(fleet.lab, "2")
    fleet.write("two")
    Seen.releases["two"] = sync_changes(fleet)
    Seen.digests["two"] = {h: d for h, (_, d) in running(fleet).items()}
    for host in fleet.hosts():
        assert Seen.digests["one"][host.name] != Seen.digests["two"][host.name], host.name
    document = listing(fleet)
    rows = {row["id"]: row for row in document["releases"]}
    names = sorted(h.name for h in fleet.hosts())
    one, two = rows[Seen.releases["one"]], rows[Seen.releases["two"]]
    assert sorted(one["hosts"]) == names and sorted(two["hosts"]) == names, rows
    assert sorted(two["current"]) == names and one["current"] == [], rows
    assert sorted(one["retained"]) == names and sorted(two["retained"]) == names, rows
    assert one["command"] == "sync" and set(two["digests"]) == {"linux/amd64", "linux/arm64"}, two
    assert [row["id"] for row in document["releases"]][:2] == [Seen.releases["two"], Seen.releases["one"]]
    table = fleet.run("releases", "keeper")
    assert table.returncode == 0 and Seen.releases["one"] in table.stdout, table.stdout + table.stderr


def test_records_are_root_only_and_hold_no_secret(fleet: Fleet) -> None:
    secret = (fleet.directory / "keeper-token").read_text().strip()
    assert len(secret) >= 16
    for host in fleet.hosts():
        modes = on_host(host, f"stat -c '%a %U %n' {RELEASES} {RELEASES}/*").stdout.split("\n")
        assert modes[0].startswith("700 root "), modes
        assert all(line.startswith("600 root ") for line in modes[1:] if line), modes
        leaked = on_host(host, f"grep -rlF -- '{secret}' {RELEASES}")
        assert leaked.returncode == 1 and leaked.stdout == "", leaked.stdout
        record = records(host)[Seen.releases["two"]]
        entry = record["services"]["keeper"]
        assert entry["files"] and all("content" not in f and "sha256" not in f for f in entry["files"]), entry
        assert record["operator"] and record["fleet_sha256"], record


def test_rollback_puts_the_previous_release_back_by_digest(fleet: Fleet) -> None:
    dry = fleet.run("rollback", "keeper", "--dry")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert {h: d for h, (_, d) in running(fleet).items()} == Seen.digests["two"], "--dry changed nothing"
    bad = fleet.run("rollback", "keeper", "--to", "20200101T000000Z-0000")
    assert bad.returncode == 2 and "amd64-1" in bad.stderr and "arm64-1" in bad.stderr, bad.stderr
    result = fleet.run("rollback", "keeper", "--message", "two is bad")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert {h: d for h, (_, d) in running(fleet).items()} == Seen.digests["one"]
    for host in fleet.hosts():
        note = on_host(host, "docker exec archfleet-keeper cat /etc/keeper/note").stdout.strip()
        assert note == "one", (host.name, note)
    back = newest_release(fleet)
    row = next(r for r in listing(fleet)["releases"] if r["id"] == back)
    assert row["command"] == f"rollback keeper to {Seen.releases['one']}" and row["message"] == "two is bad", row
    assert sorted(row["current"]) == sorted(h.name for h in fleet.hosts()), row
    Seen.releases["back"] = back


def test_after_a_rollback_the_next_rollback_and_sync_behave_as_documented(fleet: Fleet) -> None:
    """A second rollback goes back to the release before the rollback (two, that differs from what runs); a plain
    sync moves the service to what the fleet file's tag says now (two again), as a new release."""
    again = fleet.run("rollback", "keeper", "--dry", "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    plan = json.loads(again.stdout)
    assert {entry["services"]["keeper"]["action"] for entry in plan["hosts"].values()} == {"recreate"}, plan
    assert f"back to release {Seen.releases['two']}" in again.stderr, again.stderr
    dry = fleet.run("sync", "--dry")
    assert dry.returncode == 0 and "keeper (recreate)" in dry.stdout, dry.stdout
    Seen.releases["three"] = sync_changes(fleet)
    assert {h: d for h, (_, d) in running(fleet).items()} == Seen.digests["two"]


def delete_from_registry(lab: LabState, reference: str) -> None:
    """The registry forgets a manifest (REPO@DIGEST), through its API."""
    repository, digest = reference.split("/", 1)[1].split("@")
    url = f"https://{lab.registry.address}/v2/{repository}/manifests/{digest}"
    auth = (lab.registry.username, lab.registry_password())
    deleted = requests.delete(url, auth=auth, verify=lab.registry.ca_cert, timeout=30)
    assert deleted.status_code == 202, deleted.text
    gone = requests.get(url, auth=auth, verify=lab.registry.ca_cert, timeout=30,
                        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert gone.status_code == 404, gone.status_code


def test_rollback_after_the_tag_moved_and_the_registry_lost_the_old_image(fleet: Fleet) -> None:
    publish_mover(fleet.lab, "3")
    Seen.releases["four"] = sync_changes(fleet)
    Seen.digests["four"] = {h: d for h, (_, d) in running(fleet).items()}
    for host in fleet.hosts():
        for reference in Seen.digests["two"][host.name]:
            if reference.startswith(f"{fleet.lab.registry.address}/{MOVER}@"):
                delete_from_registry(fleet.lab, reference)
    result = fleet.run("rollback", "keeper", "--to", Seen.releases["three"])
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert {h: d for h, (_, d) in running(fleet).items()} == Seen.digests["two"]
    Seen.releases["back2"] = newest_release(fleet)


def test_retention_keeps_the_newest_releases_images_and_files_and_removes_the_oldest(fleet: Fleet) -> None:
    """With `retain: 2`, two more releases leave the two newest: the image and file version only older releases
    used are gone from every host; the retained ones' are there."""
    publish_mover(fleet.lab, "5")
    fleet.write("five", retain=2)
    Seen.releases["five"] = sync_changes(fleet)
    Seen.digests["five"] = {h: d for h, (_, d) in running(fleet).items()}
    publish_mover(fleet.lab, "6")
    fleet.write("six", retain=2)
    Seen.releases["six"] = sync_changes(fleet)
    for host in fleet.hosts():
        kept = records(host)
        assert sorted(kept) == [Seen.releases["five"], Seen.releases["six"]], (host.name, sorted(kept))
        images = set(on_host(host, "docker image ls --digests --format '{{.Repository}}@{{.Digest}}'").stdout.split())
        entries = {name: kept[release]["services"]["keeper"]
                   for name, release in (("five", Seen.releases["five"]), ("six", Seen.releases["six"]))}
        for entry in entries.values():
            assert entry["image"] in images, (host.name, entry["image"])
        for old in Seen.digests["two"][host.name] | Seen.digests["four"][host.name]:
            assert old not in images, (host.name, old)
        folders = set(on_host(host, "ls -d /etc/archfleet/services/keeper/*").stdout.split())
        wanted = {f["host_path"].rsplit("/", 1)[0] for entry in entries.values() for f in entry["files"]}
        assert folders == wanted, (host.name, folders, wanted)
    document = listing(fleet)
    rows = {row["id"]: row for row in document["releases"]}
    assert rows[Seen.releases["one"]]["retained"] == [], "history still lists a release no longer retained"
    pruned = fleet.run("rollback", "keeper", "--to", Seen.releases["back2"])
    assert pruned.returncode == 2 and "no longer retained" in pruned.stderr, pruned.stderr


def test_a_host_whose_release_files_are_gone_fails_alone_and_unchanged(fleet: Fleet) -> None:
    """The release before is `five`; on the arm64 host its file version is removed: that host fails before any
    switch, naming the folder, its container untouched (same id); the amd64 host rolls back."""
    arm64, amd64 = fleet.lab.hosts_of("arm64")[0], fleet.lab.hosts_of("amd64")[0]
    entry = records(arm64)[Seen.releases["five"]]["services"]["keeper"]
    folder = entry["files"][0]["host_path"].rsplit("/", 1)[0]
    assert on_host(arm64, f"rm -rf {folder}").returncode == 0
    before = running(fleet)
    result = fleet.run("rollback", "keeper")
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    lines = {line.split("\t")[1]: line.split("\t")[2] for line in result.stdout.splitlines()
             if line.startswith("rollback\t")}
    assert lines[arm64.name].startswith("FAILED: ") and folder in lines[arm64.name], lines
    assert lines[amd64.name] == "updated: keeper (recreate)", lines
    after = running(fleet)
    assert after[arm64.name] == before[arm64.name], "nothing changed on the host that failed"
    assert after[amd64.name][1] == Seen.digests["five"][amd64.name]


def applied_out_of_order(fleet: Fleet, retain: int) -> tuple[str, str]:
    """Two syncs where the one that started first applies second (day two, bug 1): `first` (every host, note
    `first-N`, `retain`) starts while another run's lock is held on the amd64 host and waits (--lock-wait); then
    `later` (note `later-N`, --limit arm64-1) starts, takes the free arm64 host's lock and applies there; then the
    amd64 host's lock goes and `first` applies on both. On the arm64 host: `later` then `first`, ids the other way.
    Returns (first's id, later's id)."""
    arm64, amd64 = fleet.lab.hosts_of("arm64")[0], fleet.lab.hosts_of("amd64")[0]
    if not (fleet.directory / "keeper-token").exists():  # run alone (-k): a first sync makes the secret
        assert fleet.run("sync").returncode == 0
    token = "20000101T000000Z-0000"
    held = take_lock(token, "other@lab", "sync", "held by the order test", 900).get_raw_value()
    assert on_host(amd64, held).returncode == 0
    try:
        count = len(Seen.releases)
        fleet.write(f"first-{count}", retain=retain)
        first = subprocess.Popen([str(BIN / "archfleet"), "sync", "-f", str(fleet.path), "--lock-wait", "600"],
                                 cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert first.stderr is not None
        seen = []
        for line in first.stderr:
            seen.append(line)
            if "lock: waiting for" in line:
                break
        assert any("lock: waiting for" in line for line in seen), "".join(seen)
        time.sleep(1.1)  # the later run's id is a later second
        later_path = fleet.directory / "later.yaml"
        later_path.write_text(fleet.path.read_text().replace(f"note: first-{count}", f"note: later-{count}"))
        later = archfleet("sync", "-f", str(later_path), "--limit", arm64.name)
        if later.returncode != 0:
            first.kill()  # it waits for the lock: it changes nothing once killed
            first.communicate()
        assert later.returncode == 0, later.stdout + later.stderr[-3000:]
    finally:
        on_host(amd64, release_lock(token).get_raw_value())
    out, err = first.communicate(timeout=900)
    assert first.returncode == 0, out + err[-3000:]
    # the arm64 host holds the image `later` ran (the same digest): not pulled again, and the line says so
    assert f"[{arm64.name}] pulled 0 image(s), already held 1 in " in err, err[-3000:]
    history = on_host(arm64, f"cat {RELEASES}/history.jsonl").stdout.splitlines()
    first_id, later_id = json.loads(history[-1])["id"], json.loads(history[-2])["id"]
    assert first_id < later_id, (first_id, later_id)
    Seen.releases[f"first-{count}"], Seen.releases[f"later-{count}"] = first_id, later_id
    return first_id, later_id


def test_releases_are_ordered_as_the_host_applied_them_not_by_id(fleet: Fleet) -> None:
    """The arm64 host runs the release that started first and applied last: `releases` marks it running there
    (with and without SERVICE), and `rollback --dry` goes back to the one applied before it."""
    arm64 = fleet.lab.hosts_of("arm64")[0]
    first_id, later_id = applied_out_of_order(fleet, retain=3)
    rows = {row["id"]: row for row in listing(fleet)["releases"]}
    assert arm64.name in rows[first_id]["current"] and arm64.name not in rows[later_id]["current"], rows
    every = fleet.run("releases", "--json")
    assert every.returncode == 0, every.stderr
    rows = {row["id"]: row for row in json.loads(every.stdout)["releases"]}
    assert arm64.name in rows[first_id]["current"] and arm64.name not in rows[later_id]["current"], rows
    dry = fleet.run("rollback", "keeper", "--dry", "--limit", arm64.name)
    assert dry.returncode == 0, dry.stdout + dry.stderr[-3000:]
    assert f"[{arm64.name}] keeper: back to release {later_id} " in dry.stderr, dry.stderr


def test_retention_keeps_the_record_just_written_when_its_id_sorts_first(fleet: Fleet) -> None:
    """With `retain: 1`, the release that started first and applied last keeps its own record on the arm64 host
    (the one it runs); the later-started one's record goes."""
    arm64 = fleet.lab.hosts_of("arm64")[0]
    first_id, _ = applied_out_of_order(fleet, retain=1)
    assert set(records(arm64)) == {first_id}, records(arm64)
    rows = {row["id"]: row for row in listing(fleet)["releases"]}
    assert rows[first_id]["current"] == sorted(h.name for h in fleet.hosts()), rows


def test_a_put_back_that_cannot_start_says_dockers_reason(fleet: Fleet) -> None:
    """The undo of a switch (and a plan's `restore`) is bounded like the switch and gives docker's own error: a
    kept previous container whose process cannot start is named with the engine's reason, not only "could not put
    back". (Last in the module: it leaves the amd64 host without `keeper`; the teardown removes the rest.)"""
    amd64 = fleet.lab.hosts_of("amd64")[0]
    image = on_host(amd64, "docker inspect --format '{{.Image}}' archfleet-keeper").stdout.strip()
    assert image, "keeper runs on the amd64 host"
    created = on_host(amd64, f"docker rm -f archfleet-keeper-previous >/dev/null 2>&1; "
                             f"docker create --name archfleet-keeper-previous {image} /no/such/program")
    assert created.returncode == 0, created.stderr
    undo = on_host(amd64, rollback_container("archfleet-keeper", "archfleet-keeper-previous", 30).get_raw_value())
    assert undo.returncode == 1, undo
    reason = [line for line in undo.stderr.splitlines() if line.startswith("archfleet-failure: ")]
    assert len(reason) == 1 and "could not start archfleet-keeper: " in reason[0], undo.stderr
    assert "/no/such/program" in reason[0] or "no such file" in reason[0].lower(), reason
    on_host(amd64, "docker rm -f archfleet-keeper archfleet-keeper-previous >/dev/null 2>&1")
