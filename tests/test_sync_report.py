"""The sync's report: what makes a sync fail (exit 1) besides a host, and how it says so."""

from __future__ import annotations

import json

from archfleet.sync.report import UPDATED, SyncReport


def test_a_failure_of_no_one_host_fails_the_sync_and_is_said_once() -> None:
    report = SyncReport(dry=False)
    report.host("amd64-1").status = UPDATED
    assert report.ok
    report.failures.append("spot fleet edge: its pull-mode hosts' release was not published: SSM refused")
    assert not report.ok
    assert report.lines()[-1] == ("sync: FAILED: spot fleet edge: its pull-mode hosts' release was not published: "
                                  "SSM refused")
    document = json.loads(report.as_json())
    assert document["ok"] is False and document["failures"] == report.failures
