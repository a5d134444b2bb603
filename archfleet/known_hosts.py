"""archfleet's own known_hosts file (the fleet file's ``ssh.known_hosts``): what is recorded for a host, its
fingerprint, forgetting a host, and the one line that refuses a changed key.

The file is OpenSSH's own format (hashed or not), read and changed only through ``ssh-keygen -F / -l / -R``, so
what archfleet says is what ``ssh`` will check. New keys are written by the SSH clients themselves
(``StrictHostKeyChecking=accept-new`` for OpenSSH, ``ssh_strict_host_key_checking: accept-new`` for paramiko), or,
for a new EC2 instance, by ``record_keys`` before the first connection from keys its console output vouches for
(``archfleet.spot.host_keys``); ``scan_keys`` asks a host for its keys (``ssh-keyscan``), ``fingerprint`` is
OpenSSH's ``SHA256:`` fingerprint of a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PORT = 22


@dataclass(frozen=True)
class HostKeyTarget:
    """Where one host's key is recorded: the file, and the names ssh records and looks it up under."""

    host: str  # the inventory name
    address: str  # what ssh connects to (ssh_hostname, else the name)
    port: int
    file: str
    checking: str  # StrictHostKeyChecking: yes, accept-new, ...

    @property
    def lookup_name(self) -> str:
        """The name ssh writes the key under: ``ADDRESS``, or ``[ADDRESS]:PORT`` on another port."""
        return self.address if self.port == DEFAULT_PORT else f"[{self.address}]:{self.port}"

    @property
    def forget_names(self) -> list[str]:
        """Every name a key for this host can be recorded under: its inventory name, its address, [address]:port."""
        names = [self.host, self.address, self.lookup_name]
        if self.port != DEFAULT_PORT:
            names.append(f"[{self.host}]:{self.port}")
        return list(dict.fromkeys(names))


TARGET_DATA = ("ssh_known_hosts_file", "ssh_hostname", "ssh_port", "ssh_strict_host_key_checking")


def target_of(name: str, data: Mapping[str, Any]) -> HostKeyTarget | None:
    """A host's known_hosts target from its (merged) host data; None when it names no known_hosts file."""
    file = data.get("ssh_known_hosts_file")
    if not file:
        return None
    return HostKeyTarget(name, str(data.get("ssh_hostname") or name), int(data.get("ssh_port") or DEFAULT_PORT),
                         str(file), str(data.get("ssh_strict_host_key_checking") or "yes"))


def inventory_targets(inventory: Any) -> dict[str, HostKeyTarget]:
    """``{host: target}`` for every host of a pyinfra inventory that names a known_hosts file."""
    targets = {}
    for host in inventory:
        data = {key: host.data.get(key) for key in TARGET_DATA}
        target = target_of(host.name, data)
        if target is not None:
            targets[host.name] = target
    return targets


def _keygen(*args: str) -> list[str]:
    result = subprocess.run(["ssh-keygen", *args], capture_output=True, text=True, check=False, timeout=30)
    return result.stdout.splitlines() if result.returncode == 0 else []


def fingerprints(file: str, name: str) -> list[str]:
    """``TYPE SHA256:...`` of each key recorded for ``name`` (empty: none, or no file)."""
    if not Path(file).is_file():
        return []
    found = []
    for line in _keygen("-l", "-F", name, "-f", file):
        words = line.split()
        if line.startswith("#") or len(words) < 3:
            continue
        found.append(f"{words[1]} {words[2]}")
    return found


def is_recorded(target: HostKeyTarget) -> bool:
    return bool(fingerprints(target.file, target.lookup_name))


def ensure_file(file: str) -> None:
    """Create the known_hosts file (and its folder, 0700) empty and 0600 if missing, so ssh can record keys."""
    path = Path(file)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def new_key_line(target: HostKeyTarget) -> str:
    """``HOST: new host key recorded: ED25519 SHA256:...`` (one line per new host)."""
    return f"{target.host}: new host key recorded: {', '.join(fingerprints(target.file, target.lookup_name))}"


def changed_key_reason(host: str, file: str | None) -> str:
    """The one line that refuses a host whose key is not the one recorded."""
    where = f" in {file}" if file else ""
    return (f"host key changed: {host}'s SSH key is not the one recorded{where}; if the host was rebuilt, "
            f"accept its new key with `archfleet hosts forget {host}`")


def forget(target: HostKeyTarget) -> list[str]:
    """Remove every key recorded for the host (by name, address, [address]:port); the names that had one."""
    if not Path(target.file).is_file():
        return []
    removed = []
    for name in target.forget_names:
        if any(line.startswith("# Host ") and " found" in line for line in _keygen("-R", name, "-f", target.file)):
            removed.append(name)
    backup = Path(f"{target.file}.old")  # ssh-keygen -R keeps the previous file: not another copy to go stale
    if removed and backup.exists():
        backup.unlink()
    return removed


class NewKeyWatch:
    """The hosts (of ``accept-new`` targets) whose key is not recorded yet; after they are contacted,
    ``report`` gives one line per host whose key the SSH client has now recorded.

    It costs nothing while no key is new (the usual sync): the files are read once before and compared after, and
    ``ssh-keygen`` only looks into a file that changed."""

    def __init__(self, targets: Iterable[HostKeyTarget], read_before: dict[str, bytes] | None = None):
        """``read_before``: files as they were read earlier, before any of the hosts was contacted."""
        self.targets = {target.host: target for target in targets if target.checking == "accept-new"}
        self.before: dict[str, bytes] = {}
        for target in self.targets.values():
            if target.file not in self.before:
                if read_before and target.file in read_before:
                    self.before[target.file] = read_before[target.file]
                    continue
                ensure_file(target.file)
                self.before[target.file] = _read(target.file)
        self._pending: dict[str, HostKeyTarget] | None = None

    @property
    def pending(self) -> dict[str, HostKeyTarget]:
        """The watched hosts whose key was not recorded when the watch began."""
        if self._pending is None:
            self._pending = {}
            for name, target in self.targets.items():
                if not _recorded_in(self.before[target.file], target):
                    self._pending[name] = target
        return self._pending

    def report(self, hosts: Iterable[str] | None = None) -> list[str]:
        changed = {file for file, content in self.before.items() if _read(file) != content}
        if not changed:
            return []
        lines = []
        for name in list(hosts if hosts is not None else self.targets):
            target = self.pending.get(name)
            if target is not None and target.file in changed and is_recorded(target):
                lines.append(new_key_line(target))
                del self.pending[name]
        return lines


def _read(file: str) -> bytes:
    try:
        return Path(file).read_bytes()
    except OSError:
        return b""


def _recorded_in(content: bytes, target: HostKeyTarget) -> bool:
    """Whether ``content`` (a known_hosts file as it was) records a key for ``target``."""
    if not content.strip():
        return False
    with tempfile.TemporaryDirectory(prefix="archfleet-known-") as folder:
        copy = Path(folder) / "known_hosts"
        copy.write_bytes(content)
        return bool(fingerprints(str(copy), target.lookup_name))


HostKey = tuple[str, str]  # (key type, base64 blob), as a known_hosts line or a .pub file carries it


def fingerprint(blob: str) -> str:
    """``SHA256:...``: OpenSSH's fingerprint of a public key (``ssh-keygen -l``), from its base64 blob."""
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return "SHA256:?"
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def scan_keys(target: HostKeyTarget, timeout: int = 5) -> list[HostKey]:
    """The keys the host presents now (``ssh-keyscan``; the address is checked first: archfleet.ssh.host_address).
    Empty when it does not answer."""
    from archfleet.ssh import host_address

    argv = ["ssh-keyscan", "-T", str(timeout), "-p", str(target.port), "--", host_address(target.address)]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout * 4 + 5)
    except subprocess.TimeoutExpired:
        return []
    keys = []
    for line in result.stdout.splitlines():
        words = line.split()
        if len(words) >= 3 and not line.startswith("#"):
            keys.append((words[1], words[2]))
    return sorted(set(keys))


def record_keys(target: HostKeyTarget, keys: Iterable[HostKey]) -> None:
    """Append the host's keys under its lookup name (the file created 0600 if missing); ssh then checks them."""
    ensure_file(target.file)
    lines = "".join(f"{target.lookup_name} {kind} {blob}\n" for kind, blob in keys)
    with open(target.file, "a+b") as file:
        file.seek(0, os.SEEK_END)
        if file.tell():
            file.seek(-1, os.SEEK_END)
            if file.read(1) != b"\n":
                lines = "\n" + lines  # a last line without its newline stays a line of its own
        file.write(lines.encode("ascii"))
