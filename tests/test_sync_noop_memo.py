"""A no-op sync's remembered verdict (archfleet.sync.noop_memo): what its key covers, when a sync is one to
remember, and that the next sync takes the verdict only when every host's read finished, succeeded and gives the
remembered state, handing any other read, finished, to the full sync. The reads here are real processes (``sh``
printing a host's answer); the lab runs the whole path against real hosts and a real registry
(tests/lab/test_services.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archfleet.facts.service_reads import ServicesStateValue, parse_services_state
from archfleet.fleet import load_fleet
from archfleet.images.verify import VerifyReport
from archfleet.sync import early, noop_memo
from archfleet.sync.report import FAILED, UNCHANGED, UPDATED, ServiceResult, SyncReport
from tests.imported import modules_imported

CONTAINERS = ('[{"Names": ["/archfleet-web"], "State": "running", "Labels": {"archfleet.service": "web", '
              '"archfleet.spec": "abc", "archfleet.digest": "sha256:1"}, "Status": "Up 2 minutes"}]')
ANSWER = ("platform=Linux x86_64\nengine=up\ncontainers=" + CONTAINERS + "\n"
          "meta=0:0 0600 /etc/archfleet/services/web/1/f\n"
          "d8e8fca2dc0f896fd7cb4cb0031ba249d8e8fca2dc0f896fd7cb4cb0031ba249  /etc/archfleet/services/web/1/f\n"
          "now=1000\nlogin=900 /etc/archfleet/credentials/r:5000.password\n")


def state(answer: str = ANSWER) -> ServicesStateValue:
    return parse_services_state(answer.splitlines())


def test_a_state_digest_is_what_a_plan_that_changes_nothing_reads_of_the_host() -> None:
    same = noop_memo.state_digest(state())
    # the host's clock, the logins' ages and the containers' uptime text move between syncs: a plan that pulls
    # nothing reads none of them
    later = ANSWER.replace("now=1000", "now=5000").replace("login=900", "login=4000").replace("2 minutes", "3 hours")
    assert noop_memo.state_digest(state(later)) == same
    for drifted in (ANSWER.replace('"running"', '"exited"'), ANSWER.replace("sha256:1", "sha256:2"),
                    ANSWER.replace("d8e8fca2", "00000000"), ANSWER.replace("0:0 0600", "0:0 0644"),
                    ANSWER.replace("x86_64", "aarch64"), ANSWER.replace("engine=up", "engine=down"),
                    ANSWER.replace("meta=", "#").replace("d8e8", "#")):
        assert noop_memo.state_digest(state(drifted)) != same, drifted


def test_the_environment_digest_covers_every_variable_but_those_a_shell_sets_per_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = noop_memo.environment_digest()
    for name in noop_memo.SHELL_VARIABLES:
        monkeypatch.setenv(name, "/usr/bin/other")
    assert noop_memo.environment_digest() == before
    monkeypatch.setenv("VMESS_ID", "a secret a template may read")
    assert noop_memo.environment_digest() != before
    assert "a secret" not in noop_memo.environment_digest()


def test_the_code_identity_changes_with_any_module_of_archfleet(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "archfleet"
    (package / "sync").mkdir(parents=True)
    (package / "sync" / "noop_memo.py").write_text("")
    (package / "schema.py").write_text("A = 1\n")
    monkeypatch.setattr(noop_memo, "__file__", str(package / "sync" / "noop_memo.py"))
    before = noop_memo.code_identity()
    assert noop_memo.code_identity() == before
    (package / "schema.py").write_text("A = 2\n")
    os.utime(package / "schema.py", ns=(1, 1))
    assert noop_memo.code_identity() != before


# what the verdict's path may import: each of these costs more to import than the path spends on its work
HEAVY_MODULES = ("dataclasses", "inspect", "urllib", "http.client", "email", "pathlib", "yaml", "jinja2",
                 "archfleet.fleet", "archfleet.registry_client", "archfleet.sync.report", "archfleet.commands")


def test_the_verdict_path_imports_no_heavy_module() -> None:
    """What ``archfleet sync`` imports before the verdict is taken (archfleet.cli, early, noop_memo, the probe)."""
    imported = modules_imported("archfleet.cli", "archfleet.run", "archfleet.sync.early", "archfleet.sync.noop_memo",
                                "archfleet.registry_probe")
    assert "archfleet.registry_probe" in imported
    assert not [name for name in imported if name.startswith(HEAVY_MODULES)], sorted(imported)


def test_the_verdict_keeps_the_report_as_it_was_printed(fleet_file: Path) -> None:
    report = unchanged_report("a", "b")
    report.host("a").platform = "linux/amd64"
    report.host("b").orphans.append("old")
    verdict = noop_memo.verdict_of(load_fleet(fleet_file), {"a": state(), "b": state()}, report,
                                   verified("r:5000/acme/web:1", "r:5000/acme/cache:2"), dry=False, prune=False,
                                   bound=90)
    assert verdict is not None and verdict["ok"]
    assert verdict["printed"] == {"text": "\n".join(report.lines()), "json": report.as_json()}


@pytest.fixture()
def fleet_file(tmp_path: Path) -> Path:
    (tmp_path / "inventory.py").write_text("hosts = ['a', 'b']\n")
    path = tmp_path / "fleet.yaml"
    path.write_text('registry: {address: "r:5000"}\ninventory: inventory.py\nservices:\n'
                    '  web: {image: "r:5000/acme/web:1", hosts: [a, b]}\n'
                    '  cache: {image: "r:5000/acme/cache:2", hosts: [b]}\n')
    return path


def unchanged_report(*hosts: str) -> SyncReport:
    report = SyncReport(dry=False)
    for host in hosts:
        report.host(host).services["web"] = ServiceResult("none", "up to date", UNCHANGED)
    return report


def verified(*references: str) -> dict[str, VerifyReport]:
    return {ref: VerifyReport(ref, index_digest=f"sha256:{i}") for i, ref in enumerate(references)}


def test_a_sync_that_changed_nothing_is_remembered_by_its_tags_and_host_digests(fleet_file: Path) -> None:
    fleet = load_fleet(fleet_file)
    states = {"a": state(), "b": state()}
    verdict = noop_memo.verdict_of(fleet, states, unchanged_report("a", "b"),
                                   verified("r:5000/acme/web:1", "r:5000/acme/cache:2"), dry=False, prune=True,
                                   bound=90)
    assert verdict is not None
    assert verdict["tags"] == {
        "r:5000/acme/cache:2": {"repository": "acme/cache", "tag": "2", "digest": "sha256:1"},
        "r:5000/acme/web:1": {"repository": "acme/web", "tag": "1", "digest": "sha256:0"}}
    assert verdict["states"] == {"a": noop_memo.state_digest(states["a"]), "b": noop_memo.state_digest(states["b"])}
    assert verdict["flags"] == {"dry": False, "prune": True} and verdict["bound"] == 90
    assert verdict["registry"] == {"address": "r:5000", "api_host": "r:5000", "username": None, "password_file": None,
                                   "ca_file": None}
    assert verdict["title"] == f"sync: 2 service(s) from {fleet_file} on inventory.py"


def test_a_sync_with_a_change_a_failure_or_a_tag_it_cannot_ask_again_is_not_remembered(fleet_file: Path) -> None:
    fleet = load_fleet(fleet_file)
    states = {"a": state(), "b": state()}
    tags = verified("r:5000/acme/web:1", "r:5000/acme/cache:2")

    def verdict(report: SyncReport, reports: dict[str, VerifyReport] = tags,
                read: dict[str, ServicesStateValue] = states) -> dict[str, Any] | None:
        return noop_memo.verdict_of(fleet, read, report, reports, dry=False, prune=False, bound=90)

    changed = unchanged_report("a", "b")
    changed.host("b").status = UPDATED
    failed = unchanged_report("a", "b")
    failed.host("b").status, failed.host("b").reason = FAILED, "connection refused"
    assert verdict(changed) is None and verdict(failed) is None
    assert verdict(unchanged_report("a", "b"), read={"a": state()}) is None  # b was not read
    assert verdict(unchanged_report("a", "b"), verified("r:5000/acme/web:1")) is None  # cache's tag not read
    fleet_file.write_text(fleet_file.read_text().replace('"r:5000/acme/cache:2"', '"ghcr.io/acme/cache:2"'))
    elsewhere = load_fleet(fleet_file)
    assert noop_memo.verdict_of(elsewhere, states, unchanged_report("a", "b"),
                                verified("r:5000/acme/web:1", "ghcr.io/acme/cache:2"), dry=False, prune=False,
                                bound=90) is None


@pytest.fixture()
def reads(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Reads started as ``early.start`` starts them: ``a`` answers ANSWER, ``b`` answers ANSWER later in the
    day; a known_hosts file watched."""
    (tmp_path / "a").write_text(ANSWER)
    (tmp_path / "b").write_text(ANSWER.replace("now=1000", "now=2000"))
    (tmp_path / "known_hosts").write_text("a ssh-ed25519 AAAA\n")
    cached = {"reads": {host: ["cat", str(tmp_path / host)] for host in ("a", "b")},
              "watch": [str(tmp_path / "known_hosts")]}
    started = early.EarlyReads({"fleet": "f", "limit": None}, cached)
    memo = {"bound": 30, "states": {"a": noop_memo.state_digest(state()), "b": noop_memo.state_digest(state())}}
    yield {"started": started, "memo": memo, "dir": tmp_path, "cached": cached}
    started.discard()


def test_the_remembered_verdict_holds_when_every_host_answers_as_remembered(reads: dict[str, Any]) -> None:
    assert noop_memo.hosts_as_remembered(reads["started"], reads["memo"])


def test_a_host_that_drifted_hands_every_finished_read_to_the_full_sync(reads: dict[str, Any]) -> None:
    reads["memo"]["states"]["b"] = noop_memo.state_digest(state(ANSWER.replace('"running"', '"exited"')))
    started: early.EarlyReads = reads["started"]
    assert not noop_memo.hosts_as_remembered(started, reads["memo"])
    for host in ("a", "b"):  # the full sync adopts the very reads: no second command on any host
        adopted = started.adopt(host, reads["cached"]["reads"][host])
        assert isinstance(adopted, early.FinishedRead) and adopted.returncode == 0
        assert adopted.communicate(timeout=1)[0].decode() == (reads["dir"] / host).read_text()


def test_a_failed_read_or_a_new_host_key_is_left_to_the_full_sync(tmp_path: Path, reads: dict[str, Any]) -> None:
    failing = early.EarlyReads({"fleet": "f", "limit": None}, {"reads": {
        "a": ["cat", str(reads["dir"] / "a")], "b": ["sh", "-c", f"cat {reads['dir'] / 'b'}; exit 255"]}})
    try:
        assert not noop_memo.hosts_as_remembered(failing, reads["memo"])
    finally:
        failing.discard()
    started: early.EarlyReads = reads["started"]
    (reads["dir"] / "known_hosts").write_text("a ssh-ed25519 AAAA\nb ssh-ed25519 BBBB\n")  # accepted meanwhile
    assert not noop_memo.hosts_as_remembered(started, reads["memo"])


def test_a_read_still_running_at_the_bound_is_left_running_for_the_full_sync(reads: dict[str, Any]) -> None:
    slow = early.EarlyReads({"fleet": "f", "limit": None}, {"reads": {"a": ["sleep", "5"]}})
    try:
        assert slow.wait(0.2) is None
        assert slow.processes["a"].poll() is None  # not killed: the full sync's own bound decides
    finally:
        slow.discard()


def test_a_verdict_is_taken_only_with_the_flags_code_and_environment_it_was_remembered_with(
        reads: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    started: early.EarlyReads = reads["started"]
    memo = {**reads["memo"], "version": noop_memo.MEMO_VERSION, "flags": {"dry": False, "prune": False},
            "code": noop_memo.code_identity(), "environment": noop_memo.environment_digest()}
    started.cached[early.NOOP] = memo
    monkeypatch.setattr(early, "_started", started)
    assert noop_memo.remembered_verdict(["-f", "f", "--json"]) is memo
    assert noop_memo.remembered_verdict(["-f", "f", "--prune"]) is None
    assert noop_memo.remembered_verdict(["-f", "f", "--dry"]) is None
    monkeypatch.setenv("ARCHFLEET_SOMETHING_NEW", "1")
    assert noop_memo.remembered_verdict(["-f", "f"]) is None
    monkeypatch.delenv("ARCHFLEET_SOMETHING_NEW")
    monkeypatch.setattr(noop_memo, "code_identity", lambda: "another archfleet")
    assert noop_memo.remembered_verdict(["-f", "f"]) is None


def test_a_registry_that_cannot_be_asked_leaves_the_whole_sync_to_the_full_path(
        reads: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    started: early.EarlyReads = reads["started"]
    started.cached[early.NOOP] = {
        **reads["memo"], "version": noop_memo.MEMO_VERSION, "flags": {"dry": False, "prune": False},
        "code": noop_memo.code_identity(), "environment": noop_memo.environment_digest(),
        "registry": {"address": "127.0.0.1:1", "api_host": "127.0.0.1:1", "username": None, "password_file": None,
                     "ca_file": None},
        "tags": {"127.0.0.1:1/acme/web:1": {"repository": "acme/web", "tag": "1", "digest": "sha256:0"}},
        "ok": True, "printed": {"text": "", "json": "{}"}, "title": "sync: 1 service(s) from f on i"}
    monkeypatch.setattr(early, "_started", started)
    said: list[str] = []
    assert noop_memo.settled(["-f", "f"], said.append) is None  # connection refused: no verdict, no output
    assert not said and not capsys.readouterr().out
    assert started.adopt("a", reads["cached"]["reads"]["a"]) is not None  # the reads wait for the full sync
