"""What `archfleet logs` and `archfleet exec` send to a host and how they print what comes back, without hosts:
``--since`` as docker reads it, the words of a command reaching a real ``sh`` as they were given, each host's
lines as a block in host order (or as they come, with ``--follow``), and the summary of exit codes. The scripts
themselves run against real engines in tests/lab/test_logs_exec.py."""

from __future__ import annotations

import datetime
import io
import subprocess
from pathlib import Path

import pytest

from archfleet.cli import main
from archfleet.commands.exec import summary
from archfleet.errors import InputError
from archfleet.sync.remote import HostEnd, PrefixedLines
from archfleet.tasks.container_commands import since_argument, with_arguments


@pytest.mark.parametrize("text", ["10m", "1h30m", "1.5h", "300ms", "1733625600", "1733625600.123456789"])
def test_durations_and_unix_times_go_to_docker_as_given(text: str) -> None:
    assert since_argument(text) == text


def test_a_date_or_time_becomes_a_unix_time_here() -> None:
    assert since_argument("2026-12-08T02:30:00Z") == "1796697000.000000000"
    assert since_argument("2026-12-08T02:30:00.5+01:00") == "1796693400.500000000"
    assert since_argument("2026-12-08t02:30:00.123456789z") == "1796697000.123456789"
    local = datetime.datetime(2026, 12, 8, 2, 30).astimezone()  # no zone: this machine's
    assert since_argument("2026-12-08T02:30") == f"{int(local.timestamp())}.000000000"
    assert since_argument("2026-12-08") == f"{int(local.replace(hour=0, minute=0).timestamp())}.000000000"


@pytest.mark.parametrize("text", ["yesterday", "-5m", "10 m", "", "2026-13-01", "2026-12-08T25:00Z", "5d",
                                  "2026-12-08 02:30", "1h; rm -rf /"])
def test_anything_else_is_bad_input_naming_it(text: str) -> None:
    with pytest.raises(InputError, match="--since"):
        since_argument(text)


def test_every_word_reaches_the_script_as_one_positional_argument() -> None:
    words = ["archfleet-x", "a  b", "$HOME", "*", "; echo injected", "'", '"', "\\", "-e", ""]
    script = with_arguments('for word in "$@"; do printf "<%s>\\n" "$word"; done', words)
    printed = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert printed.splitlines() == [f"<{word}>" for word in words]


def test_blocks_come_in_host_order_whatever_order_the_hosts_end_in() -> None:
    out, err = io.StringIO(), io.StringIO()
    lines = PrefixedLines(["amd64-1", "arm64-10", "arm64-2"], live=False, label="logs", out=out, err=err)
    lines.line("arm64-2", "late")
    lines.line("arm64-10", "one")
    lines.end("arm64-2", HostEnd("arm64-2", 0))
    lines.line("amd64-1", "first")
    lines.line("arm64-10", "two")
    assert out.getvalue() == ""  # amd64-1 has not ended: nothing is printed yet
    lines.end("amd64-1", HostEnd("amd64-1", 0, stderr=["warning"]))
    assert out.getvalue() == "amd64-1  | first\n" and err.getvalue() == "amd64-1  | warning\n"
    lines.end("arm64-10", HostEnd("arm64-10", None, "no container archfleet-web", ["ssh noise"]))
    assert out.getvalue().splitlines() == ["amd64-1  | first", "arm64-10 | one", "arm64-10 | two",
                                           "arm64-2  | late"]
    assert err.getvalue().splitlines() == ["amd64-1  | warning", "logs: arm64-10: no container archfleet-web"]


def test_live_lines_are_printed_as_they_come_and_stderr_when_the_host_ends() -> None:
    out, err = io.StringIO(), io.StringIO()
    lines = PrefixedLines(["a", "bb"], live=True, label="logs", out=out, err=err)
    lines.line("bb", "one")
    assert out.getvalue() == "bb | one\n"
    lines.line("a", "two")
    assert out.getvalue() == "bb | one\na  | two\n"
    lines.end("a", HostEnd("a", None, "connection refused", ["ssh: connect to host a port 22: Connection refused"]))
    assert err.getvalue() == "logs: a: connection refused\n"


def test_the_summary_groups_hosts_by_result_in_their_order() -> None:
    ends = [HostEnd("a", 0), HostEnd("b", 3), HostEnd("c", None, "no container x"), HostEnd("d", 0)]
    assert summary(ends) == "exit 0 on a, d; exit 3 on b; not run on c"


def test_a_host_only_pyinfra_reaches_is_refused_in_one_line_naming_it(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hosts.py").write_text('servers = [("web-1", {}), ("web-2", {"ssh_password": "not-used"})]\n')
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("registry: {address: registry.invalid}\ninventory: hosts.py\n"
                     "services:\n  web: {image: 'redis:7', groups: [servers]}\n")
    for command in (["logs", "web", "-f", str(fleet)], ["exec", "web", "-f", str(fleet), "--", "true"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.splitlines() == [f"archfleet: error: {command[0]}: web-2 is reached only through pyinfra (a "
                                    f"connector, a password or paramiko in its data): {command[0]} reaches hosts "
                                    "with plain OpenSSH"], err
    assert main(["logs", "web", "-f", str(fleet), "--limit", "web-1", "--since", "tomorrow"]) == 2
    assert main(["logs", "db", "-f", str(fleet)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"archfleet: error: logs: {fleet} declares no service 'db' (services: web)")
