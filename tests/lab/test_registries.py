"""Several registries of several kinds, end to end on the lab.

Three registries run on the lab gateway, all Debian's Distribution 2.8:

- the lab's own (``:5000``, htpasswd): its login comes from Docker's config.json through a credential helper
  (``tests/standins/docker-credential-archfleet-standin``, a stand-in for docker-credential-pass & co.);
- a token-auth registry (``:5001``, ``auth: token``) trusting the lab CA, with the token service stand-in
  (``tests/standins/token_issuer.py``, for Docker Hub's and GHCR's token services) on ``:5443``: users with
  per-repository grants, anonymous pulls of ``public/*``;
- an "ECR" registry (``:5002``, htpasswd holding the user and password moto's ``get_authorization_token`` decodes
  to), logged in to through boto3 against moto_server on loopback.

The token and ECR registries serve the lab registry's storage folder, so one push through the token registry (by
`archfleet images build`) makes the same image visible in all three without pushing it three times.

Exercised: `images build` and `images verify` through token auth; the sync pre-flight and pulls by digest on the
amd64 and arm64 hosts from all three; `deploys/host.py` logging in to all three (converging twice, and renewing
only the ECR login once it is older than 11 hours); an anonymous pull (client and a host's engine) of a public
repository with an anonymous token; push scope and cross-repository blob mounts; each auth failure's own line.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from archfleet import credentials
from archfleet.lab.registry import (
    ExtraRegistry,
    TokenAuth,
    ensure_extra_registry,
    ensure_token_signer,
    extra_registry,
    stop_extra_registry,
)
from archfleet.lab.state import LabPaths, LabState, state_dir
from archfleet.registry_client import (
    AccessDenied,
    AuthenticationFailed,
    AuthenticationRequired,
    RegistryClient,
    UnknownRepository,
    resolve_platform_digests,
)
from tests.lab.support import BIN, LAB_INVENTORY, PROJECT, PyinfraResult, on_host

pytestmark = pytest.mark.lab

STANDINS = PROJECT / "tests" / "standins"
SERVICE = "archfleet-lab-token"
ISSUER = "archfleet-token-standin"
MOTO_ACCOUNT = "123456789012"  # moto's default account; its ECR password is "<account>-auth-token"
REGION = "eu-west-1"
TAG = f"bookworm-{secrets.token_hex(3)}"  # a new tag per run: each run pushes (only manifests, once blobs are there)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, context: ssl.SSLContext | None, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=2, context=context).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.2)


@dataclass
class Rig:
    lab: LabState
    paths: LabPaths
    directory: Path
    token: ExtraRegistry
    ecr: ExtraRegistry
    passwords: dict[str, str]  # token-service users
    identity_token: str
    env: dict[str, str]  # what archfleet and pyinfra run with: DOCKER_CONFIG, PATH with the helper, AWS -> moto
    fleet: Path

    @property
    def htpasswd_address(self) -> str:
        return self.lab.registry.address

    @property
    def requests(self) -> list[dict]:
        """What clients asked the token service for (one entry per token)."""
        return [json.loads(line) for line in (self.directory / "token-requests.jsonl").read_text().splitlines()]

    def client(self, user: str | None, password: str | None = None, registry: str | None = None) -> RegistryClient:
        return RegistryClient(registry or self.token.address, user, password if password is not None else (
            self.passwords.get(user or "")), ca_file=self.paths.ca_cert)

    def run(self, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), cwd=PROJECT, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def archfleet(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "archfleet"), *args)

    def host_deploy(self) -> PyinfraResult:
        result = self.run(str(BIN / "pyinfra"), "-y", LAB_INVENTORY, "deploys/host.py")
        return PyinfraResult(result.returncode, result.stdout + result.stderr)


def fleet_text(rig_dir: Path, lab: LabState, token: str, ecr: str) -> str:
    ca = LabPaths(state_dir()).ca_cert
    local = "{local_image: 'archfleet-lab/debian:bookworm-{arch}', tag: " + TAG
    run = "groups: [amd64, arm64], command: [sleep, infinity]"
    return f"""\
# The token-auth registry is the fleet's own (where images are published).
registry: {{address: "{token}", username: alice, password_file: {rig_dir}/alice-password, ca_file: {ca}}}
registries:
  "{lab.registry.address}": {{ca_file: {ca}}}   # login: Docker's config.json -> credential helper stand-in
  "{ecr}": {{ecr: {{region: {REGION}, registry_id: "{MOTO_ACCOUNT}"}}, ca_file: {ca}}}
inventory: {LAB_INVENTORY}
images:
  debian: {local}, repository: private/debian}}
  debian-public: {local}, repository: public/debian}}
rollout: {{canary: 1, batch: "100%", pause: 0}}
services:
  from-token: {{image: debian, {run}}}
  from-htpasswd: {{image: "{lab.registry.address}/private/debian:{TAG}", {run}}}
  from-ecr: {{image: "{ecr}/private/debian:{TAG}", {run}}}
"""


@pytest.fixture(scope="module")
def rig(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    paths = LabPaths(state_dir())
    directory = tmp_path_factory.mktemp("registries")
    directory.chmod(0o700)
    gateway = lab.gateway
    token = extra_registry(paths, "token", f"{gateway}:5001")
    ecr = extra_registry(paths, "ecr", f"{gateway}:5002")
    passwords = {"alice": secrets.token_urlsafe(16), "reader": secrets.token_urlsafe(16)}
    identity_token = secrets.token_urlsafe(24)
    users = {
        "users": {
            "alice": {"password": passwords["alice"], "grants": {"private/*": ["pull", "push"],
                                                                   "public/*": ["pull", "push"]}},
            "reader": {"password": passwords["reader"], "grants": {"private/*": ["pull"]}},
            "robot": {"identity_token": identity_token, "grants": {"private/*": ["pull"]}},
        },
        "anonymous": {"public/*": ["pull"]},
    }
    (directory / "users.json").write_text(json.dumps(users))
    (directory / "alice-password").write_text(passwords["alice"] + "\n")
    (directory / "alice-password").chmod(0o600)
    signer_key, signer_cert = ensure_token_signer(paths)
    processes: list[subprocess.Popen[bytes]] = []
    local_trust = Path("/etc/docker/certs.d") / token.address
    try:
        issuer = subprocess.Popen(
            [sys.executable, "-m", "tests.standins.token_issuer", "--listen", f"{gateway}:5443",
             "--tls-cert", str(paths.registry_cert), "--tls-key", str(paths.registry_key),
             "--signing-key", str(signer_key), "--signing-cert", str(signer_cert), "--issuer", ISSUER,
             "--users", str(directory / "users.json"), "--requests", str(directory / "token-requests.jsonl")],
            cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=(directory / "issuer.log").open("wb"))
        processes.append(issuer)
        context = ssl.create_default_context(cafile=str(paths.ca_cert))
        wait_for(f"https://{gateway}:5443/token?service={SERVICE}", context, "the token service stand-in", issuer)
        (directory / "token-requests.jsonl").write_text("")
        # both extra registries serve the lab registry's storage (one push is seen by all three)
        for registry in (token, ecr):
            registry.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not registry.data.is_symlink():
                registry.data.symlink_to(paths.registry_data)
        ensure_extra_registry(paths, token, TokenAuth(f"https://{gateway}:5443/token", SERVICE, ISSUER,
                                                      paths.ca_cert))
        ensure_extra_registry(paths, ecr, users={"AWS": f"{MOTO_ACCOUNT}-auth-token"})

        moto_port = free_port()
        moto = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(moto)
        wait_for(f"http://127.0.0.1:{moto_port}/moto-api/data.json", None, "moto_server", moto)

        docker_config = directory / "docker"
        docker_config.mkdir(mode=0o700)
        keychain = directory / "keychain.json"
        keychain.write_text(json.dumps({lab.registry.address: {"Username": lab.registry.username,
                                                               "Secret": lab.registry_password()}}))
        keychain.chmod(0o600)
        (docker_config / "config.json").write_text(json.dumps(
            {"credHelpers": {lab.registry.address: "archfleet-standin"}}))
        fleet = directory / "fleet.yaml"
        fleet.write_text(fleet_text(directory, lab, token.address, ecr.address))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            DOCKER_CONFIG=str(docker_config), PATH=f"{STANDINS}:{os.environ['PATH']}",
            ARCHFLEET_STANDIN_CREDENTIALS=str(keychain), ARCHFLEET_FLEET=str(fleet), PYTHONUNBUFFERED="1",
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}", AWS_DEFAULT_REGION=REGION,
            AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE="/nonexistent/aws-config", AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        )
        # the local engine pushes to the token registry: it trusts the lab CA for it; the login is in DOCKER_CONFIG
        made_trust = not local_trust.exists()
        local_trust.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.ca_cert, local_trust / "ca.crt")
        rig = Rig(lab, paths, directory, token, ecr, passwords, identity_token, env, fleet)
        login = subprocess.run(["docker", "login", "--username", "alice", "--password-stdin", token.address],
                               input=passwords["alice"], env=env, capture_output=True, text=True, check=False)
        assert login.returncode == 0, login.stderr
        yield rig
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        stop_extra_registry(token)
        stop_extra_registry(ecr)
        if "made_trust" in locals() and made_trust:
            shutil.rmtree(local_trust, ignore_errors=True)


@pytest.fixture(scope="module")
def built(rig: Rig) -> Rig:
    """`archfleet images build` through the token registry (docker pushes with push,pull tokens; archfleet
    publishes the index with a PUT that asks for push), twice: the second run builds and pushes nothing."""
    first = rig.archfleet("images", "build", "-f", str(rig.fleet))
    assert first.returncode == 0, first.stdout + first.stderr
    second = rig.archfleet("images", "build", "-f", str(rig.fleet))
    assert second.returncode == 0 and "all images up to date" in second.stdout, second.stdout + second.stderr
    return rig


def test_images_build_and_verify_through_token_auth(built: Rig) -> None:
    for image in ("debian", "debian-public"):
        result = built.archfleet("images", "verify", image, "-f", str(built.fleet))
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(" ok") == 2, result.stdout
    pushes = [r for r in built.requests if r["account"] == "alice"
              and any(s == "repository:private/debian:pull,push" or s == "repository:private/debian:push,pull"
                      for s in r["scopes"])]
    assert pushes, "nothing asked the token service for push on private/debian"
    assert all(g["actions"] == ["pull", "push"] for r in pushes for g in r["granted"]
               if g["name"] == "private/debian")


def test_public_repository_is_pulled_with_an_anonymous_token(built: Rig) -> None:
    anonymous = built.client(None)
    digests = resolve_platform_digests(anonymous, f"{built.token.address}/public/debian:{TAG}")
    assert set(digests) == {"linux/amd64", "linux/arm64"}
    asked = [r for r in built.requests if r["account"] is None and "repository:public/debian:pull" in r["scopes"]]
    assert asked and asked[-1]["granted"] == [{"type": "repository", "name": "public/debian", "actions": ["pull"]}]
    with pytest.raises(AuthenticationRequired, match=(
            rf"^registry {built.token.address}: repository private/debian: anonymous access does not grant pull")):
        anonymous.manifest("private/debian", TAG)


def test_each_auth_failure_is_its_own_line(built: Rig) -> None:
    registry = built.token.address
    with pytest.raises(AuthenticationFailed, match=(
            rf"^registry {registry}: repository private/debian: wrong username or password \(user alice")):
        built.client("alice", "not-the-password").manifest("private/debian", TAG)
    index = built.client("alice").manifest("private/debian", TAG)
    with pytest.raises(AccessDenied, match=(
            rf"^registry {registry}: repository private/debian: user reader .* is not granted pull,push "
            r"\(insufficient_scope\)$")):
        built.client("reader").put_manifest("private/debian", "copy", index.body, index.media_type)
    strict = built.client("alice")
    strict.unknown_repository_fails = True
    with pytest.raises(UnknownRepository, match=(
            rf"^registry {registry}: repository private/nothing-here does not exist \(NAME_UNKNOWN\)$")):
        strict.manifest("private/nothing-here", TAG)
    with pytest.raises(AuthenticationFailed, match=rf"^registry {built.htpasswd_address}: repository private/debian"
                                                   r": wrong username or password \(user archfleet"):
        built.client("archfleet", "wrong", built.htpasswd_address).manifest("private/debian", TAG)


def test_cross_repository_mount_asks_for_push_here_and_pull_there(built: Rig) -> None:
    alice = built.client("alice")
    digests = resolve_platform_digests(alice, f"{built.token.address}/private/debian:{TAG}")
    manifest = alice.manifest("private/debian", digests["linux/arm64"])
    blobs = [manifest.json["config"]["digest"], *(layer["digest"] for layer in manifest.json["layers"])]
    target = f"private/mounted-{secrets.token_hex(3)}"
    assert all(alice.mount_blob(target, digest, "private/debian") for digest in blobs)
    alice.put_manifest(target, "copy", manifest.body, manifest.media_type)
    assert alice.manifest(target, "copy").digest == digests["linux/arm64"]
    mounts = [r for r in built.requests if f"repository:{target}:pull,push" in r["scopes"]]
    assert mounts and "repository:private/debian:pull" in mounts[0]["scopes"]


def test_docker_config_credential_helper_and_identity_token(built: Rig) -> None:
    keychain = built.directory / "keychain-2.json"
    keychain.write_text(json.dumps({built.token.address: {"Username": "<token>", "Secret": built.identity_token}}))
    keychain.chmod(0o600)
    config = {"credHelpers": {built.token.address: "archfleet-standin"}}
    environment = {"PATH": built.env["PATH"], "ARCHFLEET_STANDIN_CREDENTIALS": str(keychain)}
    saved = {k: os.environ.get(k) for k in environment}
    os.environ.update(environment)
    try:
        found = credentials.credentials_for(built.token.address, docker_config=config)
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    assert found is not None and found.identity_token and found.source == (
        "credential helper docker-credential-archfleet-standin")
    asked = [json.loads(line) for line in Path(f"{keychain}.log").read_text().splitlines()]
    assert asked == [{"action": "get", "server": built.token.address, "argv": ["get"]}]  # server on stdin only
    robot = RegistryClient(built.token.address, ca_file=built.paths.ca_cert, credentials=found)
    assert robot.manifest("private/debian", TAG).is_index
    assert any(r["account"] == "robot" for r in built.requests)


def test_ecr_token_from_moto_logs_in_to_an_htpasswd_registry(built: Rig) -> None:
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in built.env.items() if k.startswith("AWS_")})
    credentials.forget_cached()
    try:
        found = credentials.credentials_for(built.ecr.address, _ecr_entry(built))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        credentials.forget_cached()
    assert found is not None and (found.username, found.secret) == ("AWS", f"{MOTO_ACCOUNT}-auth-token")
    assert found.expires_at is not None and found.expires_at > time.time() + 11 * 3600
    client = RegistryClient(built.ecr.address, ca_file=built.paths.ca_cert, credentials=found)
    assert set(resolve_platform_digests(client, f"{built.ecr.address}/private/debian:{TAG}")) == {
        "linux/amd64", "linux/arm64"}


def _ecr_entry(rig: Rig):  # type: ignore[no-untyped-def]
    from archfleet.fleet.registries import EcrAuth, RegistryEntry

    return RegistryEntry(rig.ecr.address, "test", ecr=EcrAuth(REGION, MOTO_ACCOUNT), ca_file=rig.paths.ca_cert)


def test_hosts_log_in_to_every_registry_and_sync_pulls_from_all_three(built: Rig) -> None:
    first = built.host_deploy()
    assert first.returncode == 0, first.output[-3000:]
    second = built.host_deploy()
    assert second.returncode == 0 and second.grand_total()["changed"] == 0, second.output[-3000:]
    for host in built.lab.hosts_of("amd64") + built.lab.hosts_of("arm64"):
        config = on_host(host, "cat /root/.docker/config.json")
        for address in (built.htpasswd_address, built.token.address, built.ecr.address):
            assert f'"{address}"' in config.stdout, f"{host.name} is not logged in to {address}"

    sync = built.archfleet("sync", "-f", str(built.fleet))
    assert sync.returncode == 0, sync.stdout + sync.stderr
    digests = resolve_platform_digests(built.client("alice"), f"{built.token.address}/private/debian:{TAG}")
    for host in built.lab.hosts_of("amd64") + built.lab.hosts_of("arm64"):
        images = on_host(host, "docker inspect --format '{{.Config.Image}}' $(docker ps -q)").stdout.split()
        for address in (built.htpasswd_address, built.token.address, built.ecr.address):
            assert f"{address}/private/debian@{digests[f'linux/{host.arch}']}" in images, (host.name, images)

    # a host's engine with no login at all (an empty client config) pulls the public tag with an anonymous token
    host = built.lab.hosts_of("amd64")[0]
    pulled = on_host(host, f"DOCKER_CONFIG=$(mktemp -d) docker pull -q {built.token.address}/public/debian:{TAG}")
    assert pulled.returncode == 0, pulled.stderr
    assert any(r["account"] is None and r["granted"] for r in built.requests[-5:]), built.requests[-5:]

    # an ECR login older than 11 hours is renewed (and nothing else is touched)
    aged = on_host(host, f"touch -d '12 hours ago' /etc/archfleet/registry/{built.ecr.address}.password")
    assert aged.returncode == 0, aged.stderr
    third = built.host_deploy()
    assert third.returncode == 0 and third.grand_total()["changed"] == 1, third.output[-3000:]
    remove = built.archfleet("sync", "-f", str(_empty_fleet(built)), "--prune")
    assert remove.returncode == 0, remove.stdout + remove.stderr


def _empty_fleet(rig: Rig) -> Path:
    path = rig.directory / "empty.yaml"
    path.write_text(rig.fleet.read_text().split("services:")[0] + "services: {}\n")
    return path
