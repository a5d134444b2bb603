"""The lab's private registries: Debian's Distribution 2.8 processes with TLS from the lab CA.

The lab's registry (`archfleet lab up`) uses htpasswd auth. More registries of other kinds can run next to it
(:func:`ensure_extra_registry`), each in its own folder under ``<lab dir>/registries/NAME``:

- ``token``: Distribution's ``auth: token`` mode, as Docker Hub, GHCR, Harbor and GitLab run it: a 401 names a
  token service (``realm``), and the registry accepts JWTs signed by a key whose ``x5c`` certificate chain ends
  in its ``rootcertbundle`` (the lab CA; :func:`ensure_token_signer` issues the signing certificate);
- ``htpasswd``: Basic auth with users of its own (e.g. the ``AWS`` user an ECR token decodes to).

Each runs as a process of this machine (no registry image is needed), listening on the lab network's gateway
address so that the lab hosts and the local Docker engine both reach it.
"""

from __future__ import annotations

import os
import secrets
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from archfleet.errors import OperationFailed
from archfleet.lab.state import LabPaths, write_private
from archfleet.run import run, say

REGISTRY_USER = "archfleet"


def ensure_credentials(paths: LabPaths) -> None:
    if not paths.registry_password.exists():
        write_private(paths.registry_password, secrets.token_urlsafe(24) + "\n")
    if not paths.htpasswd.exists():
        password = paths.registry_password.read_text().strip()
        paths.htpasswd.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["htpasswd", "-B", "-i", "-c", str(paths.htpasswd), REGISTRY_USER], input_text=password)
        paths.htpasswd.chmod(0o600)


def render_config(paths: LabPaths, listen: str) -> str:
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(paths.registry_data)},
            "delete": {"enabled": True},
        },
        "http": {
            "addr": listen,
            "tls": {"certificate": str(paths.registry_cert), "key": str(paths.registry_key)},
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "auth": {"htpasswd": {"realm": "archfleet-lab", "path": str(paths.htpasswd)}},
    }
    return yaml.safe_dump(config, sort_keys=False)


def registry_answers(address: str, ca_cert: Path) -> bool:
    """The /v2/ endpoint answers over TLS (401 without credentials is an answer)."""
    context = ssl.create_default_context(cafile=str(ca_cert))
    try:
        urllib.request.urlopen(f"https://{address}/v2/", context=context, timeout=3)
        return True
    except urllib.error.HTTPError as error:
        return error.code == 401
    except (urllib.error.URLError, OSError):
        return False


def running_pid(paths: LabPaths) -> int | None:
    return pid_of(paths.registry_pid)


def pid_of(pid_file: Path, program: bytes = b"docker-registry") -> int | None:
    """The process recorded in ``pid_file``, if it still runs (and is ``program``: a registry by default)."""
    try:
        pid = int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    return pid if program in cmdline else None


def ensure_registry(paths: LabPaths, address: str) -> None:
    ensure_credentials(paths)
    serve(render_config(paths, address), paths.registry_config, paths.registry_pid, paths.registry_log,
          paths.registry_data, address, paths.ca_cert)


def serve(config: str, config_file: Path, pid_file: Path, log_file: Path, data: Path, address: str,
          ca_cert: Path) -> None:
    """Run `docker-registry serve` with ``config`` (restarted when the config changed) until it answers."""
    changed = not config_file.exists() or config_file.read_text() != config
    if changed:
        write_private(config_file, config)
    pid = pid_of(pid_file)
    if pid and not changed and registry_answers(address, ca_cert):
        return
    if pid:
        stop_pid(pid_file)
    say(f"starting the registry on {address}")
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    start_daemon(["docker-registry", "serve", str(config_file)], pid_file, log_file,
                 lambda: registry_answers(address, ca_cert), f"the registry did not answer on {address}")


def start_daemon(argv: list[str], pid_file: Path, log_file: Path, answers: Callable[[], bool], failure: str) -> None:
    """Start a service of the lab as a process of this machine in a session of its own (it outlives archfleet),
    record its pid, and wait until ``answers()`` (at most 20 s); else OperationFailed(``failure``)."""
    log = log_file.open("ab")
    process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    write_private(pid_file, f"{process.pid}\n")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if answers():
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise OperationFailed(f"{failure}; see {log_file}")


def stop_registry(paths: LabPaths) -> None:
    stop_pid(paths.registry_pid)
    for extra in sorted((paths.root / "registries").glob("*/registry.pid")):
        stop_pid(extra)


def stop_pid(pid_file: Path, program: bytes = b"docker-registry") -> None:
    pid = pid_of(pid_file, program)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)


# --- more registries: token auth, htpasswd with users of their own ------------------------------------------------


@dataclass(frozen=True)
class ExtraRegistry:
    """A registry of the lab besides the main one: its name, address, and folder ``<lab dir>/registries/NAME``."""

    name: str
    address: str  # gateway:port
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def pid(self) -> Path:
        return self.root / "registry.pid"

    @property
    def log(self) -> Path:
        return self.root / "registry.log"

    @property
    def htpasswd(self) -> Path:
        return self.root / "htpasswd"


@dataclass(frozen=True)
class TokenAuth:
    """Distribution's ``auth: token`` settings: where clients get tokens, and whose signatures it trusts."""

    realm: str  # https://gateway:port/token
    service: str
    issuer: str
    rootcertbundle: Path


def extra_registry(paths: LabPaths, name: str, address: str) -> ExtraRegistry:
    return ExtraRegistry(name, address, paths.root / "registries" / name)


def render_extra_config(paths: LabPaths, registry: ExtraRegistry, token: TokenAuth | None) -> str:
    """The config of an extra registry: the main one's TLS and storage layout, with token or htpasswd auth."""
    config = yaml.safe_load(render_config(paths, registry.address))
    config["storage"]["filesystem"]["rootdirectory"] = str(registry.data)
    if token is not None:
        config["auth"] = {"token": {"realm": token.realm, "service": token.service, "issuer": token.issuer,
                                    "rootcertbundle": str(token.rootcertbundle)}}
    else:
        config["auth"] = {"htpasswd": {"realm": f"archfleet-lab-{registry.name}", "path": str(registry.htpasswd)}}
    return yaml.safe_dump(config, sort_keys=False)


def ensure_extra_registry(paths: LabPaths, registry: ExtraRegistry, token: TokenAuth | None = None,
                          users: dict[str, str] | None = None) -> None:
    """Run ``registry`` with token auth (``token``), or htpasswd auth holding ``users`` (name -> password)."""
    if token is None:
        lines = [run(["htpasswd", "-B", "-i", "-n", user], input_text=password).stdout.strip()
                 for user, password in sorted((users or {}).items())]
        write_private(registry.htpasswd, "".join(line + "\n" for line in lines))
    serve(render_extra_config(paths, registry, token), registry.config, registry.pid, registry.log,
          registry.data, registry.address, paths.ca_cert)


def stop_extra_registry(registry: ExtraRegistry) -> None:
    stop_pid(registry.pid)


def ensure_token_signer(paths: LabPaths) -> tuple[Path, Path]:
    """(key, certificate) a token service signs JWTs with: an EC P-256 key whose certificate the lab CA issues, so
    a registry with the lab CA as ``rootcertbundle`` trusts the ``x5c`` chain of its tokens."""
    folder = paths.root / "token-signer"
    key, cert = folder / "signer.key", folder / "signer.crt"
    if key.exists() and cert.exists():
        return key, cert
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    csr, ext = folder / "signer.csr", folder / "ext.cnf"
    ext.write_text("keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n")
    old_umask = os.umask(0o077)
    try:
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", "/CN=archfleet lab token signer"])
        run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(paths.ca_cert), "-CAkey", str(paths.ca_key),
             "-CAcreateserial", "-days", "825", "-out", str(cert), "-extfile", str(ext)])
    finally:
        os.umask(old_umask)
    csr.unlink()
    ext.unlink()
    return key, cert
