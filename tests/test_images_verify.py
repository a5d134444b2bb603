"""The verify report (pure): verdicts, the printed table, the one-line summary, digests for pulling."""

from __future__ import annotations

from archfleet.images.verify import MISMATCH, MISSING, OK, PlatformCheck, VerifyReport, human_size

AMD64 = "sha256:" + "a" * 64


def test_report_ok_only_when_every_platform_is_ok() -> None:
    report = VerifyReport("r:5000/x:1", "sha256:idx", [PlatformCheck("linux/amd64", OK, AMD64, 108_500_000,
                                                                     "linux/amd64")])
    assert report.ok and report.summary() == "r:5000/x:1: ok" and report.digests() == {"linux/amd64": AMD64}
    report.checks.append(PlatformCheck("linux/arm64", MISMATCH, AMD64, 108_500_000, "linux/amd64"))
    report.checks.append(PlatformCheck("linux/arm/v7", MISSING))
    assert not report.ok
    assert report.summary() == "r:5000/x:1: linux/arm64 mismatch: config says linux/amd64, linux/arm/v7 missing"
    lines = report.table().splitlines()
    assert lines[0].split() == ["PLATFORM", "DIGEST", "SIZE", "VERDICT"]
    assert lines[1].split() == ["linux/amd64", AMD64, "108.5", "MB", "ok"]
    assert lines[2].endswith("mismatch: config says linux/amd64") and lines[3].split()[1:] == ["-", "-", "missing"]


def test_missing_tag() -> None:
    report = VerifyReport("r:5000/x:1", None, [PlatformCheck("linux/amd64", MISSING)])
    assert not report.ok and report.summary() == "r:5000/x:1: tag not found"


def test_human_size() -> None:
    assert [human_size(n) for n in (999, 65_600_000, 1_500_000_000)] == ["999 B", "65.6 MB", "1.5 GB"]


def test_json_document() -> None:
    report = VerifyReport("r:5000/x:1", "sha256:idx", [
        PlatformCheck("linux/amd64", OK, AMD64, 108_500_000, "linux/amd64"),
        PlatformCheck("linux/arm64", MISMATCH, AMD64, 108_500_000, "linux/amd64"),
        PlatformCheck("linux/arm/v7", MISSING),
    ], extra=["linux/s390x"])
    assert report.as_json() == {
        "reference": "r:5000/x:1", "digest": "sha256:idx", "ok": False,
        "platforms": [
            {"platform": "linux/amd64", "verdict": "ok", "digest": AMD64, "size": 108_500_000,
             "config_platform": "linux/amd64"},
            {"platform": "linux/arm64", "verdict": "mismatch", "digest": AMD64, "size": 108_500_000,
             "config_platform": "linux/amd64"},
            {"platform": "linux/arm/v7", "verdict": "missing", "digest": None, "size": None, "config_platform": None},
        ],
        "not_required": ["linux/s390x"],
    }
    missing_tag = VerifyReport("r:5000/x:1", None, [PlatformCheck("linux/amd64", MISSING)]).as_json()
    assert missing_tag["digest"] is None and missing_tag["ok"] is False
