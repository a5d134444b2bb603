"""The no-op sync's reads started at launch (archfleet.sync.early): what is remembered, when the remembered
commands are started (every input unchanged, a private cache, ssh only), and that a started read is used only for
the very command line the load makes. The commands run here are the real ``ssh`` (``ssh -V``: no host contacted);
the lab's sync tests run the whole path against real hosts (tests/lab/test_services.py)."""

from __future__ import annotations

import marshal
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archfleet.sync import early
from tests.imported import modules_imported

READ = ["ssh", "-V"]  # real ssh, contacts nobody, prints its version on stderr and exits 0


@pytest.fixture()
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fleet file and inventory, a private cache under tmp_path, no ARCHFLEET_* environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in [name for name in os.environ if name.startswith("ARCHFLEET_")]:
        monkeypatch.delenv(name)
    (tmp_path / "inventory.py").write_text("web = ['web-1']\n")
    path = tmp_path / "fleet.yaml"
    path.write_text(f"registry: {{lab: true}}\ninventory: {tmp_path / 'inventory.py'}\nservices: {{}}\n")
    yield path
    early.discard()
    monkeypatch.setattr(early, "_started", None)
    monkeypatch.setattr(early, "_key", None)


def remembered_sync(fleet: Path, reads: dict[str, list[str]], *, load: str = "", watch: list[str] | None = None
                    ) -> subprocess.CompletedProcess[str]:
    """A sync's launch, load and remember in a child process (the audit hook stays in the process that installs
    it): start, then the load (opening the fleet file and the inventory, then running ``load``), then remember."""
    program = (
        "import sys\nfrom archfleet.sync import early\n"
        f"early.start(['-f', {str(fleet)!r}])\n"
        "with early.recording_inputs(needed=early.must_record()):\n"
        f"    open({str(fleet)!r}).read()\n"
        f"    open({str(fleet.parent / 'inventory.py')!r}).read()\n"
        f"    {load or 'pass'}\n"
        f"early.remember({reads!r}, {watch or []!r}, print)\n"
        "print('started' if early.started() else 'not started')\n"
        "early.discard()\n")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                            check=False, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    return result


def cached(fleet: Path) -> dict[str, Any]:
    key = early.sync_key(["-f", str(fleet)])
    assert key is not None
    return marshal.loads(Path(early.cache_file(key)).read_bytes())


def test_sync_key_reads_the_fleet_and_limit_and_gives_up_on_anything_else(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARCHFLEET_FLEET", raising=False)
    here = os.path.realpath(tmp_path)
    assert early.sync_key([]) == {"fleet": f"{here}/fleet.yaml", "limit": None}
    assert early.sync_key(["--dry", "-f", "a.yaml", "--limit", "web", "--json"]) == {
        "fleet": f"{here}/a.yaml", "limit": "web"}
    assert early.sync_key(["--fleet=b.yaml", "--limit=db", "--prune"]) == {"fleet": f"{here}/b.yaml", "limit": "db"}
    monkeypatch.setenv("ARCHFLEET_FLEET", "c.yaml")
    assert early.sync_key([]) == {"fleet": f"{here}/c.yaml", "limit": None}
    for unknown in (["--help"], ["-f"], ["--limit"], ["--dryy"], ["extra"], ["-fa.yaml"]):
        assert early.sync_key(unknown) is None, unknown


def test_a_sync_remembers_its_reads_in_a_private_file_and_the_next_one_starts_them(fleet: Path) -> None:
    first = remembered_sync(fleet, {"web-1": READ})
    assert first.stdout.splitlines() == ["not started"]
    document = cached(fleet)
    path = early.cache_file(early.sync_key(["-f", str(fleet)]) or {})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(early.cache_dir()).st_mode) == 0o700
    assert document["reads"] == {"web-1": READ}
    recorded = [entry[0] for entry in document["inputs"]]
    assert recorded == [os.path.realpath(fleet), os.path.realpath(fleet.parent / "inventory.py")]

    started = early.start(["-f", str(fleet)])
    assert started is not None and not early.must_record()
    process = started.adopt("web-1", READ)
    assert process is not None
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and b"OpenSSH" in err
    assert started.discard() == []
    again = remembered_sync(fleet, {"web-1": READ})  # started from the cache, and the cache stays as it is
    assert again.stdout.splitlines() == ["started"] and cached(fleet) == document


def test_a_read_whose_command_line_changed_is_stopped_not_used(fleet: Path) -> None:
    remembered_sync(fleet, {"web-1": ["ssh", "-V", "-o", "ConnectTimeout=30"], "web-2": READ})
    started = early.start(["-f", str(fleet)])
    assert started is not None
    assert started.adopt("web-1", READ) is None  # another command line: the caller reads it afresh
    assert started.adopt("web-3", READ) is None  # a host the cache never had
    kept = started.adopt("web-2", READ)
    assert kept is not None
    stopped = started.processes["web-1"]
    assert started.discard() == ["web-1"]
    assert stopped.returncode is not None and not started.processes
    kept.communicate(timeout=30)


@pytest.mark.parametrize("change", ["fleet file", "inventory", "environment", "cache mode", "folder mode",
                                    "not ssh", "other key", "watched file gone"])
def test_nothing_is_started_when_anything_it_was_made_from_changed(fleet: Path, change: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    watched = fleet.parent / "known_hosts"
    watched.write_text("")
    remembered_sync(fleet, {"web-1": READ}, watch=[str(watched)])
    assert early.start(["-f", str(fleet)]) is not None
    early.discard()
    path = Path(early.cache_file(early.sync_key(["-f", str(fleet)]) or {}))
    if change == "fleet file":
        fleet.write_text(fleet.read_text() + "# edited\n")
    elif change == "inventory":
        os.utime(fleet.parent / "inventory.py", ns=(1, 1))
    elif change == "environment":
        monkeypatch.setenv("ARCHFLEET_SSH_TIMEOUT", "5")
    elif change == "cache mode":
        path.chmod(0o644)
    elif change == "folder mode":
        Path(early.cache_dir()).chmod(0o777)
    elif change == "not ssh":
        document = marshal.loads(path.read_bytes())
        document["reads"]["web-1"] = ["sh", "-c", "true"]
        path.write_bytes(marshal.dumps(document))
    elif change == "other key":
        assert early.start(["-f", str(fleet), "--limit", "web"]) is None
        return
    elif change == "watched file gone":
        watched.unlink()
    assert early.start(["-f", str(fleet)]) is None
    assert early.started() is None


def test_a_load_that_runs_a_command_or_connects_is_not_remembered(fleet: Path) -> None:
    """A dynamic inventory (one that asks EC2, say) may give other hosts next time: nothing to start early."""
    remembered_sync(fleet, {"web-1": READ}, load="import subprocess; subprocess.run(['true'])")
    remembered_sync(fleet, {"web-1": READ}, load="import socket; socket.getaddrinfo('127.0.0.1', 22)")
    assert not os.path.exists(early.cache_file(early.sync_key(["-f", str(fleet)]) or {}))


def test_recording_only_what_the_load_opens_and_not_code() -> None:
    recorder = early.InputRecorder()
    recorder.hook("open", ("/etc/hostname", "r", 0))
    recorder.recording = True
    recorder.hook("open", ("/etc/hostname", "r", 0))
    recorder.hook("open", (b"/etc/hosts", "r", 0))
    recorder.hook("open", ("/usr/lib/python3/x.cpython-311.pyc", "rb", 0))
    recorder.hook("open", (3, "r", 0))  # a file descriptor: nothing to stat
    recorder.hook("import", ("json",))
    assert recorder.files == ["/etc/hostname", "/etc/hosts"] and not recorder.dynamic
    recorder.hook("subprocess.Popen", ("ssh", ["ssh"], None, None))
    assert recorder.dynamic


def test_the_reads_start_before_json_or_typing_is_imported() -> None:
    """What ``archfleet sync`` imports before its reads start: the console script, then this module (and the
    cache is marshal data, which needs no import to read)."""
    imported = modules_imported("archfleet.console", "archfleet.sync.early")
    assert "archfleet.sync.early" in imported
    assert not imported & {"json", "typing", "dataclasses", "pathlib"}, sorted(imported)
