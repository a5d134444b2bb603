"""OpenSSH command lines, without pyinfra: ``ssh_argv`` (the lab's and the builders': host key checking on, no
prompts, no agent keys), ``ssh_options`` (a pyinfra host's data as ssh options: archfleet's OpenSSH connector and
the no-op sync's reads use the same), ``ssh_destination`` (the host an ssh argv connects to), and
``connect_failure`` (what ssh said, in a few words).

Every host that lands in an ssh argv passes ``host_address`` first: a host name or an IP address, never anything
ssh could read as an option (``-oProxyCommand=...``), a user (``root@...``) or a URI. Values that come from outside
the fleet file (EC2 tags, addresses and DNS names from the API) are checked with it where they are read
(``archfleet.spot.discovery``), and again where any argv is built."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from archfleet.errors import InputError

# RFC 1123 labels (letters, digits, '-' inside), plus '_' which ssh_config aliases and some private DNS names use
HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
LOGIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")


def is_host_address(value: str) -> bool:
    """Whether ``value`` is an IPv4/IPv6 address or a DNS host name (dot-separated labels, none starting with '-';
    one trailing dot allowed; at most 253 characters)."""
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    return 0 < len(name) <= 253 and all(HOST_LABEL.fullmatch(label) for label in name.split("."))


def host_address(value: Any, source: str = "host") -> str:
    """``value`` as a host to connect to, or an InputError naming ``source`` (where it came from)."""
    text = str(value)
    if not is_host_address(text):
        raise InputError(f"{source}: {text!r} is not a host name or IP address (ssh would not read it as a host)")
    return text


def ssh_destination(data: Mapping[str, Any], name: str) -> str:
    """The host an ssh argv connects to: the host data's ``ssh_hostname``, else the inventory name; checked."""
    if data.get("ssh_hostname"):
        return host_address(data["ssh_hostname"], f"{name}: ssh_hostname")
    return host_address(name, "inventory host name")


def ssh_argv(
    user: str, address: str, *, key: str | None = None, known_hosts: str | None = None, port: int = 22,
    options: Sequence[str] = (),
) -> list[str]:
    """``ssh ... USER@ADDRESS --``: append the remote command. ``options`` go before the destination (-L, -N...)."""
    if not LOGIN_NAME.fullmatch(user):
        raise InputError(f"ssh user {user!r} is not a user name")
    destination = f"{user}@{host_address(address)}"
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5",
            "-o", "IdentitiesOnly=yes", "-p", str(port)]
    if key:
        argv += ["-i", key]
    if known_hosts:
        argv += ["-o", f"UserKnownHostsFile={known_hosts}"]
    return [*argv, *options, destination, "--"]


def ssh_options(data: dict[str, Any], control_path: str, connect_timeout: int) -> list[str]:
    """The ssh options for a host's data (pure; the destination and command are added by the caller, the
    destination from ``ssh_destination``). An ``ssh_hostname`` that is no host is refused here too."""
    if data.get("ssh_hostname"):
        host_address(data["ssh_hostname"], "ssh_hostname")
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
