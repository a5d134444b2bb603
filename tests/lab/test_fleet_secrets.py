"""Secrets that belong to the fleet, and container log limits, on the lab (docs/secrets.md, issue 30).

A first controller (its own HOME and XDG folders in a temp dir) syncs a `generate: uuid` secret: `--dry` says it
would generate it and writes nothing, the sync writes it 0600 and a second sync changes nothing. A new laptop (an
empty home, the fleet's version key copied or not) is refused by `sync --dry` and `sync` in one line naming the
secret, the hosts that hold it and `archfleet secrets pull` (container ids the same, no file written);
`secrets pull` writes the hosts' value 0600 without printing it, and the next sync changes nothing. A laptop
without the version key is refused the same way, naming the key. Hosts that disagree are named, and `--from` takes
one. Secrets from `command:` (a script here), `ssm:` and `secretsmanager:` (the lab's moto endpoint) reach the
containers byte for byte; a failing or hanging command is one line naming the secret, nothing changed. Every
container logs with json-file 10m x 3 unless its service says otherwise (docker inspect's LogConfig).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from archfleet.lab import lab as lab_module
from archfleet.lab.images import base_image
from archfleet.lab.state import LabHost, LabState
from tests.lab.faults import in_lab_host, publish_test_image
from tests.lab.support import BIN, LAB_INVENTORY, PROJECT, HostBootstrap
from tests.spot.conftest import REGION, Endpoint, endpoint  # noqa: F401  (endpoint: the moto fixture)

pytestmark = pytest.mark.lab

REPOSITORY = "archfleet-test/fleet-secrets"
SERVICES = ("keeper", "logged", "fromcmd", "fromaws")
SECRET_FILE = "~/.config/archfleet/h4-keeper-token"  # under the controller's HOME: a new laptop has none


@dataclass
class Controller:
    """One controller of the fleet: its own HOME, XDG folders and environment."""

    home: Path
    env: dict[str, str]

    @property
    def secret(self) -> Path:
        return self.home / ".config" / "archfleet" / "h4-keeper-token"

    @property
    def version_key(self) -> Path:
        return self.home / ".config" / "archfleet" / "secret-version-key"

    def archfleet(self, *args: str, timeout: float = 600,
                  extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "archfleet"), *args], cwd=PROJECT, env={**self.env, **(extra or {})},
                              capture_output=True, text=True, timeout=timeout, check=False)


def controller(folder: Path) -> Controller:
    home = folder / "home"
    for sub in ("", ".config", ".cache", ".local/share"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("XDG_", "AWS_", "ARCHFLEET_SECRET_VERSION_KEY"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_DATA_HOME=str(home / ".local/share"))
    return Controller(home, env)


@dataclass
class Rig:
    lab: LabState
    directory: Path
    image: str

    @property
    def hosts(self) -> list[LabHost]:
        return self.lab.hosts_of("amd64")[:1] + self.lab.hosts_of("arm64")[:1]

    def fleet(self, name: str, services: str) -> Path:
        path = self.directory / name
        path.write_text(f"registry: {{lab: true}}\ninventory: {LAB_INVENTORY}\nservices:\n{services}")
        return path

    def ids(self) -> dict[tuple[str, str], str]:
        """(host, container) -> id of every archfleet container on the two hosts."""
        found = {}
        for host in self.hosts:
            out = in_lab_host(host, "docker", "ps", "-a", "--no-trunc", "--filter", "label=archfleet.service",
                              "--format", "{{.Names}} {{.ID}}")
            assert out.returncode == 0, out.stderr
            for line in out.stdout.splitlines():
                name, cid = line.split()
                found[(host.name, name)] = cid
        return found

    def mounted(self, service: str, path: str) -> dict[str, str]:
        """host -> the file's content inside the service's container (docker exec cat)."""
        values = {}
        for host in self.hosts:
            out = in_lab_host(host, "docker", "exec", f"archfleet-{service}", "cat", path)
            assert out.returncode == 0, (host.name, out.stderr)
            values[host.name] = out.stdout
        return values

    def log_config(self, host: LabHost, service: str) -> dict[str, object]:
        out = in_lab_host(host, "docker", "inspect", "--format", "{{json .HostConfig.LogConfig}}",
                          f"archfleet-{service}")
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout))


def remove_services(rig: Rig) -> None:
    """This module's containers and files off the hosts (a rerun starts with no host holding a secret)."""
    names = " ".join(f"archfleet-{s} archfleet-{s}-previous" for s in SERVICES)
    folders = " ".join(f"/etc/archfleet/services/{s}" for s in SERVICES)
    for host in rig.hosts:
        in_lab_host(host, "sh", "-c", f"docker rm -f {names} >/dev/null 2>&1; rm -rf {folders}")


@pytest.fixture(scope="module")
def rig(lab: LabState, tmp_path_factory: pytest.TempPathFactory, host_bootstrap: HostBootstrap) -> Iterator[Rig]:
    host_bootstrap.ensure()
    state = lab_module.up()
    bases = {arch: base_image(arch) for arch in ("amd64", "arm64")}
    published = publish_test_image(state, REPOSITORY, "secrets", "live", bases)
    rig = Rig(state, tmp_path_factory.mktemp("fleet-secrets"), published.tag)
    remove_services(rig)
    yield rig
    remove_services(rig)


def keeper_services(rig: Rig) -> str:
    return (f"  keeper:\n    image: {rig.image}\n    groups: [amd64, arm64]\n    command: [sleep, infinity]\n"
            f"    secrets:\n      token: {{file: {SECRET_FILE}, generate: uuid}}\n"
            f"  logged:\n    image: {rig.image}\n    hosts: [amd64-1]\n    command: [sleep, infinity]\n"
            "    logging: {options: {max-size: 1m, max-file: '2'}}\n")


@pytest.fixture(scope="module")
def first(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Controller:
    return controller(tmp_path_factory.mktemp("first-laptop"))


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("archfleet: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def unchanged(result: subprocess.CompletedProcess[str]) -> bool:
    lines = [line for line in result.stdout.splitlines() if line.startswith("sync\t")]
    return bool(lines) and all(line.split("\t")[2].startswith("no changes") for line in lines)


def test_the_first_sync_generates_the_secret_once_and_logs_are_bounded(rig: Rig, first: Controller) -> None:
    fleet = rig.fleet("keeper.yaml", keeper_services(rig))
    dry = first.archfleet("sync", "--dry", "-f", str(fleet))
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "token (service keeper): would generate a new value" in dry.stderr, dry.stderr
    assert not first.secret.exists() and not first.version_key.exists(), "--dry wrote a file"
    assert rig.ids() == {}, "--dry changed a host"

    synced = first.archfleet("sync", "-f", str(fleet))
    assert synced.returncode == 0, synced.stderr[-3000:]
    assert "generated a new value into" in synced.stderr
    assert stat.S_IMODE(first.secret.stat().st_mode) == 0o600
    value = first.secret.read_text().strip()
    assert str(uuid.UUID(value)) == value
    assert rig.mounted("keeper", "/run/secrets/token") == {host.name: value for host in rig.hosts}
    again = first.archfleet("sync", "-f", str(fleet))
    assert again.returncode == 0 and unchanged(again), again.stdout + again.stderr[-2000:]

    for host in rig.hosts:
        assert rig.log_config(host, "keeper") == {"Type": "json-file",
                                                  "Config": {"max-file": "3", "max-size": "10m"}}, host.name
    amd64 = rig.hosts[0]
    assert rig.log_config(amd64, "logged") == {"Type": "json-file", "Config": {"max-file": "2", "max-size": "1m"}}


def test_a_new_laptop_is_refused_then_pulls_the_hosts_value(rig: Rig, first: Controller,
                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    fleet = rig.directory / "keeper.yaml"
    value = first.secret.read_text().strip()
    laptop = controller(tmp_path_factory.mktemp("new-laptop"))
    laptop.version_key.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(first.version_key, laptop.version_key)  # what a new laptop needs copied (docs/secrets.md)
    before = rig.ids()

    for args in (("--dry",), ()):
        refused = laptop.archfleet("sync", *args, "-f", str(fleet))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        line = one_line(refused)
        assert "secret token (service keeper)" in line and "amd64-1, arm64-1 hold a version" in line, line
        assert f"archfleet secrets pull token -f {fleet}" in line, line
        assert value not in refused.stdout + refused.stderr
        assert not laptop.secret.exists(), "a refused sync wrote the secret"
        assert rig.ids() == before, "a refused sync changed a host"
    checked = laptop.archfleet("check", "-f", str(fleet))
    assert checked.returncode == 0 and "keeper.token: to be generated" in checked.stdout, checked.stdout
    info = laptop.archfleet("service", "info", "keeper", "-f", str(fleet))
    assert info.returncode == 0, info.stderr  # needs no secret: nothing is read or generated
    assert not laptop.secret.exists()

    pulled = laptop.archfleet("secrets", "pull", "token", "-f", str(fleet))
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert value not in pulled.stdout + pulled.stderr, "secrets pull printed the value"
    assert f"to {laptop.secret} (0600) from amd64-1" in pulled.stdout and "the same on arm64-1" in pulled.stdout
    assert stat.S_IMODE(laptop.secret.stat().st_mode) == 0o600
    assert laptop.secret.read_text().strip() == value
    synced = laptop.archfleet("sync", "-f", str(fleet))
    assert synced.returncode == 0 and unchanged(synced), synced.stdout + synced.stderr[-2000:]
    assert rig.ids() == before
    again = laptop.archfleet("secrets", "pull", "token", "-f", str(fleet))
    assert again.returncode == 0 and "already holds the value" in again.stdout, again.stdout + again.stderr

    # A laptop without the version key: the secret first, then the key, each refused by name.
    keyless = controller(tmp_path_factory.mktemp("keyless-laptop"))
    pulled = keyless.archfleet("secrets", "pull", "token", "-f", str(fleet))
    assert pulled.returncode == 0, pulled.stderr
    refused = keyless.archfleet("sync", "--dry", "-f", str(fleet))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    line = one_line(refused)
    assert f"secret version key {keyless.version_key} does not exist here" in line, line
    assert "amd64-1, arm64-1 hold files named with it" in line, line
    assert not keyless.version_key.exists() and rig.ids() == before


def test_hosts_that_disagree_are_named_and_from_takes_one(rig: Rig, first: Controller,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    fleet = rig.directory / "keeper.yaml"
    value = first.secret.read_text().strip()
    arm64 = rig.hosts[1]
    mounted = in_lab_host(arm64, "docker", "inspect", "--format",
                          "{{range .Mounts}}{{if eq .Destination \"/run/secrets/token\"}}{{.Source}}{{end}}{{end}}",
                          "archfleet-keeper").stdout.strip()
    assert mounted.startswith("/etc/archfleet/services/keeper/"), mounted
    other = f"other-{uuid.uuid4()}"
    try:
        in_lab_host(arm64, "sh", "-c", 'printf %s "$1" > "$2"', "sh", other, mounted)
        laptop = controller(tmp_path_factory.mktemp("third-laptop"))
        refused = laptop.archfleet("secrets", "pull", "token", "-f", str(fleet))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        line = one_line(refused)
        assert "2 different values of token (one held by amd64-1; one held by arm64-1)" in line, line
        assert value not in refused.stderr and other not in refused.stderr and not laptop.secret.exists()
        taken = laptop.archfleet("secrets", "pull", "token", "--from", "arm64-1", "-f", str(fleet))
        assert taken.returncode == 0, taken.stderr
        assert laptop.secret.read_text().strip() == other and other not in taken.stdout + taken.stderr
        kept = laptop.archfleet("secrets", "pull", "token", "--from", "amd64-1", "-f", str(fleet))
        assert kept.returncode == 2 and "--force replaces it" in one_line(kept), kept.stderr
        forced = laptop.archfleet("secrets", "pull", "token", "--from", "amd64-1", "--force", "-f", str(fleet))
        assert forced.returncode == 0 and laptop.secret.read_text().strip() == value, forced.stderr
    finally:
        in_lab_host(arm64, "sh", "-c", 'printf %s "$1" > "$2"', "sh", value, mounted)


def command_services(rig: Rig, script: Path, timeout: int = 30) -> str:
    return (f"  fromcmd:\n    image: {rig.image}\n    groups: [amd64, arm64]\n    command: [sleep, infinity]\n"
            f"    secrets:\n      api_key: {{command: [{script}, --field, api key], timeout: {timeout}}}\n")


def test_a_secret_from_a_command_reaches_the_container(rig: Rig, first: Controller) -> None:
    value = f"cmd-{uuid.uuid4()} with spaces"
    script = rig.directory / "vault.sh"
    store = rig.directory / "vault-value"
    store.write_text(value)
    store.chmod(0o600)
    # The program gets its arguments as written (no shell): prints the value only for `--field "api key"`.
    script.write_text(f'#!/bin/sh\n[ "$1 $2" = "--field api key" ] || {{ echo "bad args: $*" >&2; exit 9; }}\n'
                      f'cat {store}\necho\n')
    script.chmod(0o700)
    fleet = rig.fleet("command.yaml", command_services(rig, script))
    synced = first.archfleet("sync", "-f", str(fleet))
    assert synced.returncode == 0, synced.stderr[-3000:]
    assert value not in synced.stdout + synced.stderr
    assert rig.mounted("fromcmd", "/run/secrets/api_key") == {host.name: value for host in rig.hosts}
    again = first.archfleet("sync", "-f", str(fleet))
    assert again.returncode == 0 and unchanged(again), again.stdout

    before = rig.ids()
    script.write_text("#!/bin/sh\necho 'starting' >&2\necho 'vault is locked' >&2\nexit 3\n")
    failed = first.archfleet("sync", "-f", str(fleet))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    line = one_line(failed)
    assert "services.fromcmd.secrets.api_key: command" in line and "exited 3: vault is locked" in line, line
    assert rig.ids() == before

    script.write_text(f"#!/bin/sh\nsleep 30\ncat {store}\n")
    slow = rig.fleet("command-slow.yaml", command_services(rig, script, timeout=1))
    timed_out = first.archfleet("sync", "--dry", "-f", str(slow))
    assert timed_out.returncode == 1, timed_out.stdout + timed_out.stderr
    line = one_line(timed_out)
    assert "services.fromcmd.secrets.api_key: command" in line and "did not finish in 1 s" in line, line
    assert rig.ids() == before


def test_secrets_from_ssm_and_secrets_manager_reach_the_container(rig: Rig, first: Controller,
                                                                  endpoint: Endpoint) -> None:  # noqa: F811
    parameter, parameter_value = f"/archfleet-test/{uuid.uuid4().hex}/db", f"ssm-{uuid.uuid4()}"
    secret_name, secret_value = f"archfleet-test-{uuid.uuid4().hex}", f"sm-{uuid.uuid4()}"
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=REGION)
    session.client("ssm", endpoint_url=endpoint.url).put_parameter(Name=parameter, Value=parameter_value,
                                                                   Type="SecureString")
    session.client("secretsmanager", endpoint_url=endpoint.url).create_secret(Name=secret_name,
                                                                              SecretString=secret_value)
    fleet = rig.fleet("aws.yaml", (
        f"  fromaws:\n    image: {rig.image}\n    groups: [amd64, arm64]\n    command: [sleep, infinity]\n"
        f"    secrets:\n      db: {{ssm: {parameter}}}\n"
        f"      api: {{secretsmanager: {secret_name}, region: {REGION}}}\n"))
    aws = {key: value for key, value in endpoint.env.items() if key.startswith("AWS_")}
    synced = first.archfleet("sync", "-f", str(fleet), extra=aws)
    assert synced.returncode == 0, synced.stderr[-3000:]
    assert parameter_value not in synced.stdout + synced.stderr and secret_value not in synced.stderr
    assert rig.mounted("fromaws", "/run/secrets/db") == {host.name: parameter_value for host in rig.hosts}
    assert rig.mounted("fromaws", "/run/secrets/api") == {host.name: secret_value for host in rig.hosts}
    again = first.archfleet("sync", "-f", str(fleet), extra=aws)
    assert again.returncode == 0 and unchanged(again), again.stdout

    missing = rig.fleet("aws-missing.yaml", (
        f"  fromaws:\n    image: {rig.image}\n    groups: [amd64, arm64]\n    command: [sleep, infinity]\n"
        f"    secrets:\n      db: {{ssm: /archfleet-test/not-there}}\n"))
    before = rig.ids()
    refused = first.archfleet("sync", "--dry", "-f", str(missing), extra=aws)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    line = one_line(refused)
    assert "services.fromaws.secrets.db: SSM parameter /archfleet-test/not-there: ParameterNotFound" in line, line
    assert rig.ids() == before
