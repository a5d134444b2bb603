"""Fleet secrets without hosts (docs/secrets.md): the load never writes; a sync's decision about a secret that is
to be generated, from the managed files its read lists (archfleet.services.fleet_secrets); `command:` sources run
without a shell, bounded, failing in one line; what `secrets pull` parses and agrees on; log options in the
container's argv. The lab test (tests/lab/test_fleet_secrets.py) runs the same on real hosts."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from archfleet.credentials import SECRET_VERSION_KEY_ENV
from archfleet.errors import InputError, OperationFailed
from archfleet.facts.service_reads import ServicesStateValue
from archfleet.fleet import Fleet, load_fleet
from archfleet.fleet.secret_sources import from_command
from archfleet.services.desired import desired_container, fleet_context
from archfleet.services.fleet_secrets import agreed_value, parse_pulled, settle_fleet_secrets

INVENTORY = 'amd64 = ["amd64-1", "amd64-2"]\narm64 = ["arm64-1"]\n'
FLEET = """\
registry: {address: "r.example:5000"}
inventory: inventory.py
services:
  web:
    image: r.example:5000/web:1
    groups: [amd64, arm64]
    secrets:
      token: {file: token, generate: uuid}
  worker:
    image: r.example:5000/worker:1
    groups: [amd64]
    secrets:
      token: {file: token, generate: uuid, mount: /run/secrets/worker-token}
    logging: {options: {max-size: 1m}}
"""
HOSTS = ["amd64-1", "amd64-2", "arm64-1"]


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "secret-version-key"
    monkeypatch.setenv(SECRET_VERSION_KEY_ENV, str(path))
    return path


def fleet_of(tmp_path: Path, text: str = FLEET) -> Fleet:
    (tmp_path / "inventory.py").write_text(INVENTORY)
    (tmp_path / "fleet.yaml").write_text(text)
    return load_fleet(tmp_path / "fleet.yaml")


def state(*files: str) -> ServicesStateValue:
    return {"platform": "linux/amd64", "machine": "x86_64", "engine_running": True, "containers": {},
            "files": {path: "0" * 64 for path in files}, "file_modes": {}, "login_ages": {}}


def said() -> tuple[list[str], object]:
    lines: list[str] = []
    return lines, lines.append


def test_the_load_writes_nothing_and_a_read_says_how_to_get_the_value(tmp_path: Path, key_file: Path) -> None:
    fleet = fleet_of(tmp_path)
    secret = fleet.services["web"].secrets[0]
    assert secret.to_be_generated and not (tmp_path / "token").exists() and not key_file.exists()
    with pytest.raises(InputError, match=r"fleet.yaml:8: services.web.secrets.token: .*token does not exist here "
                                         r"\(to be generated\): if hosts run it, `archfleet secrets pull token`"):
        secret.read()
    assert not (tmp_path / "token").exists()


def test_a_host_holding_a_version_refuses_generation_naming_the_hosts(tmp_path: Path, key_file: Path) -> None:
    fleet = fleet_of(tmp_path)
    states = {host: state() for host in HOSTS}
    states["arm64-1"] = state("/etc/archfleet/services/web/0123456789abcdef/token")
    states["amd64-2"] = state("/etc/archfleet/services/worker/fedcba9876543210/token")
    lines, say = said()
    with pytest.raises(InputError) as caught:
        settle_fleet_secrets(fleet, HOSTS, states, dry=True, say=say)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("secret token (services web, worker): ") and "amd64-2, arm64-1 hold a version" in message
    assert f"`archfleet secrets pull token -f {fleet.path}`" in message and "nothing was changed" in message
    assert not (tmp_path / "token").exists() and not key_file.exists() and lines == []


def test_a_limit_or_an_unread_host_refuses_generation(tmp_path: Path, key_file: Path) -> None:
    fleet = fleet_of(tmp_path)
    states = {host: state() for host in HOSTS}
    with pytest.raises(InputError, match="--limit leaves out amd64-2, arm64-1, which may hold a version"):
        settle_fleet_secrets(fleet, ["amd64-1"], {"amd64-1": states["amd64-1"]}, dry=True, say=print)
    del states["arm64-1"]
    with pytest.raises(OperationFailed, match="arm64-1 could not be read"):
        settle_fleet_secrets(fleet, HOSTS, states, dry=False, say=print)
    assert not (tmp_path / "token").exists() and not key_file.exists()


def test_a_dry_sync_generates_in_memory_and_a_sync_writes_once_for_every_service(tmp_path: Path,
                                                                                 key_file: Path) -> None:
    fleet = fleet_of(tmp_path)
    states = {host: state() for host in HOSTS}
    lines, say = said()
    settle_fleet_secrets(fleet, HOSTS, states, dry=True, say=say)  # type: ignore[arg-type]
    assert not (tmp_path / "token").exists() and not key_file.exists()
    assert any("would generate a new value into" in line for line in lines)
    assert any("would generate the secret version key" in line for line in lines)

    real = fleet_of(tmp_path)
    lines, say = said()
    generated = settle_fleet_secrets(real, HOSTS, states, dry=False, say=say)  # type: ignore[arg-type]
    token = tmp_path / "token"
    assert not token.exists(), "written only once the hosts are locked and read again"
    generated.write(states)  # type: ignore[arg-type]
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    value = token.read_text().strip()
    context = fleet_context(real)
    assert context.secrets.get("web") == {"token": value} == context.secrets.get("worker")


def test_a_host_that_took_a_version_before_the_lock_refuses_the_write(tmp_path: Path, key_file: Path) -> None:
    """Another controller's run generated the secret (and the version key) and put it on a host between this run's
    first read and its lock: the hosts' states read under the lock refuse the write, and nothing is written here."""
    states = {host: state() for host in HOSTS}
    under_lock = {**states, "amd64-2": state("/etc/archfleet/services/worker/fedcba9876543210/token")}
    generated = settle_fleet_secrets(fleet_of(tmp_path), HOSTS, states, dry=False, say=print)  # type: ignore
    with pytest.raises(InputError, match=r"the fleet's secret version key: amd64-2 took files named with another "
                                         r"one since the first read .* nothing was written or changed"):
        generated.write(under_lock)  # type: ignore[arg-type]
    assert not (tmp_path / "token").exists() and not key_file.exists()

    key_file.parent.mkdir()
    key_file.write_text("ab" * 32 + "\n")
    key_file.chmod(0o600)
    generated = settle_fleet_secrets(fleet_of(tmp_path), HOSTS, states, dry=False, say=print)  # type: ignore
    with pytest.raises(InputError, match=r"secret token \(services web, worker\): amd64-2 took a version of it "
                                         r"since the first read .* nothing was changed"):
        generated.write(under_lock)  # type: ignore[arg-type]
    assert not (tmp_path / "token").exists()


def test_a_missing_version_key_is_refused_while_hosts_hold_files(tmp_path: Path, key_file: Path) -> None:
    fleet = fleet_of(tmp_path)
    (tmp_path / "token").write_text("value\n")
    (tmp_path / "token").chmod(0o600)
    fleet = fleet_of(tmp_path)
    states = {host: state() for host in HOSTS}
    states["amd64-1"] = state("/etc/archfleet/services/web/0123456789abcdef/token")
    with pytest.raises(InputError, match=f"secret version key {key_file} does not exist here, but amd64-1 hold"):
        settle_fleet_secrets(fleet, HOSTS, states, dry=True, say=print)
    assert not key_file.exists()


def test_containers_log_with_bounded_json_file_unless_the_service_says(tmp_path: Path, key_file: Path) -> None:
    (tmp_path / "token").write_text("value\n")
    (tmp_path / "token").chmod(0o600)
    fleet = fleet_of(tmp_path)
    context = fleet_context(fleet)

    def log_args(service: str) -> list[str]:
        desired = desired_container(fleet.services[service], tag="t", repository="r", digest="sha256:0",
                                    host_name="amd64-1", platform="linux/amd64", context=context)
        args = desired.create_args
        return [args[i + 1] for i, arg in enumerate(args) if arg in ("--log-driver", "--log-opt")]

    assert log_args("web") == ["json-file", "max-file=3", "max-size=10m"]
    assert log_args("worker") == ["json-file", "max-file=3", "max-size=1m"]


def test_a_command_runs_without_a_shell_and_its_output_is_the_value(tmp_path: Path) -> None:
    script = "import sys; print(' '.join(sys.argv[1:]))"
    assert from_command([sys.executable, "-c", script, "$HOME", "a b", ";", "`x`"], 10, "w") == "$HOME a b ; `x`"
    assert from_command([sys.executable, "-c", "print('two\\nlines\\n')"], 10, "w") == "two\nlines\n"


def test_a_failing_or_hanging_command_is_one_line_without_its_output(tmp_path: Path) -> None:
    failing = "import sys; print('s3cr3t'); print('noise', file=sys.stderr); print('locked', file=sys.stderr); " \
              "sys.exit(3)"
    with pytest.raises(OperationFailed) as caught:
        from_command([sys.executable, "-c", failing], 10, "F:1: services.a.secrets.b")
    assert str(caught.value) == f"F:1: services.a.secrets.b: command {sys.executable!r} exited 3: locked"
    echoing = "import sys; print('s3cr3t'); print('cannot store s3cr3t', file=sys.stderr); sys.exit(4)"
    with pytest.raises(OperationFailed) as caught:
        from_command([sys.executable, "-c", echoing], 10, "w")
    assert str(caught.value) == (f"w: command {sys.executable!r} exited 4: its last stderr line repeats its output "
                                 "(not shown)")
    with pytest.raises(OperationFailed, match=r"did not finish in 1 s \(killed; `timeout:` sets the bound\)"):
        from_command([sys.executable, "-c", "import time; time.sleep(20)"], 1, "w")
    with pytest.raises(InputError, match="command 'no-such-program-h4' is not found"):
        from_command(["no-such-program-h4"], 1, "w")


def test_what_a_host_answers_to_a_pull_and_whether_the_hosts_agree() -> None:
    found, missing = parse_pulled([
        "secret=web token mount /etc/archfleet/services/web/0123456789abcdef/token dmFsdWU=",
        "secret=worker token none no container archfleet-worker mounts it and the host holds 0 version(s) of it",
    ])
    assert found == {("web", "token"): ("/etc/archfleet/services/web/0123456789abcdef/token", b"value")}
    assert missing == ["worker: no container archfleet-worker mounts it and the host holds 0 version(s) of it"]
    assert agreed_value({"a": "x", "b": "x"}, None, "token") == ("a", "x")
    with pytest.raises(InputError, match=r"2 different values of token \(one held by a, c; one held by b\)") as e:
        agreed_value({"a": "value-one", "b": "value-two", "c": "value-one"}, None, "token")
    assert "value-" not in str(e.value)
    assert agreed_value({"a": "x", "b": "y"}, "b", "token") == ("b", "y")
