"""OpenSSH command lines, without pyinfra: ``ssh_argv`` (the lab's and the builders': host key checking on, no
prompts, no agent keys), ``ssh_options`` (a pyinfra host's data as ssh options: archfleet's OpenSSH connector and
the no-op sync's reads use the same), and ``connect_failure`` (what ssh said, in a few words)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def ssh_argv(
    user: str, address: str, *, key: str | None = None, known_hosts: str | None = None, port: int = 22,
    options: Sequence[str] = (),
) -> list[str]:
    """``ssh ... USER@ADDRESS``: append the remote command. ``options`` go before the destination (-L, -N...)."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5",
            "-o", "IdentitiesOnly=yes", "-p", str(port)]
    if key:
        argv += ["-i", key]
    if known_hosts:
        argv += ["-o", f"UserKnownHostsFile={known_hosts}"]
    return [*argv, *options, f"{user}@{address}"]


def ssh_options(data: dict[str, Any], control_path: str, connect_timeout: int) -> list[str]:
    """The ssh options for a host's data (pure; the destination and command are added by the caller)."""
    options = [
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={int(data.get('ssh_connect_timeout') or connect_timeout)}",
        "-o", f"StrictHostKeyChecking={data.get('ssh_strict_host_key_checking') or 'yes'}",
        "-o", f"ControlPath={control_path}",
        "-o", f"ServerAliveInterval={ALIVE_INTERVAL}", "-o", f"ServerAliveCountMax={ALIVE_COUNT}",
    ]
    if data.get("ssh_config_file"):
        options += ["-F", str(data["ssh_config_file"])]
    if data.get("ssh_known_hosts_file"):
        options += ["-o", f"UserKnownHostsFile={data['ssh_known_hosts_file']}"]
    if data.get("ssh_key"):
        options += ["-i", str(data["ssh_key"]), "-o", "IdentitiesOnly=yes"]
    if data.get("ssh_port"):
        options += ["-p", str(int(data["ssh_port"]))]
    if data.get("ssh_user"):
        options += ["-l", str(data["ssh_user"])]
    return options


SSH_FAILED = 255  # what ssh exits with when it could not connect (or lost the connection)
ALIVE_INTERVAL, ALIVE_COUNT = 15, 4  # a host that stops answering is given up after 60 s
HOST_KEY_MISMATCH = "host key mismatch"
CONNECT_FAILURES = (  # what OpenSSH or paramiko says -> a few plain words
    ("remote host identification has changed", f"{HOST_KEY_MISMATCH} (the host's SSH key is not the one recorded)"),
    ("does not match", f"{HOST_KEY_MISMATCH} (the host's SSH key is not the one recorded)"),
    ("host key error", f"{HOST_KEY_MISMATCH} (the host's SSH key is not the one recorded)"),
    ("host key verification failed", "host key verification failed (the host's key is not recorded)"),
    ("connection refused", "connection refused"),
    ("timed out", "connect timed out"),
    ("no route to host", "no route to host"),
    ("permission denied", "SSH authentication failed"),
    ("authentication", "SSH authentication failed"),
    ("could not resolve", "could not resolve the host name"),
    ("error reading ssh protocol banner", "no SSH banner (the host accepts connections but does not answer)"),
    ("not responding", f"timed out after {ALIVE_INTERVAL * ALIVE_COUNT} s (the host stopped answering)"),
    ("connection closed", "the connection was closed"),
)


def connect_failure(text: str) -> str:
    """An SSH client's complaint (OpenSSH's stderr, a paramiko error) in a few words."""
    flat = " ".join(line.strip() for line in text.splitlines() if line.strip())
    lowered = flat.lower()
    for needle, reason in CONNECT_FAILURES:
        if needle in lowered:
            return reason
    return flat[-200:] or "ssh failed"
