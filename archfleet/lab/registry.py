"""The lab's private registry: Debian's Distribution 2.8, TLS from the lab CA, htpasswd auth.

It runs as a process of this machine (no registry image is needed), listening on the lab
network's gateway address so that the lab hosts and the local Docker engine both reach it.
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
    try:
        pid = int(paths.registry_pid.read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    return pid if b"docker-registry" in cmdline else None


def ensure_registry(paths: LabPaths, address: str) -> None:
    ensure_credentials(paths)
    config = render_config(paths, address)
    changed = not paths.registry_config.exists() or paths.registry_config.read_text() != config
    if changed:
        write_private(paths.registry_config, config)
    pid = running_pid(paths)
    if pid and not changed and registry_answers(address, paths.ca_cert):
        return
    if pid:
        stop_registry(paths)
    say(f"starting the registry on {address}")
    paths.registry_data.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = paths.registry_log.open("ab")
    process = subprocess.Popen(
        ["docker-registry", "serve", str(paths.registry_config)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    write_private(paths.registry_pid, f"{process.pid}\n")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if registry_answers(address, paths.ca_cert):
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise OperationFailed(f"the registry did not answer on {address}; see {paths.registry_log}")


def stop_registry(paths: LabPaths) -> None:
    pid = running_pid(paths)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    paths.registry_pid.unlink(missing_ok=True)
