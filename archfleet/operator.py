"""Who runs a command that changes hosts, and the id of one such run (the lock's holder and the release's name)."""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import time
from dataclasses import dataclass, field


def operator_name() -> str:
    """``user@controller``: the login name and this machine's host name (ARCHFLEET_OPERATOR overrides it, for a CI
    job that wants to be named)."""
    named = os.environ.get("ARCHFLEET_OPERATOR", "").strip()
    if named:
        return named
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def new_run_id() -> str:
    """A run's id: its UTC start time to the second and 4 random hex digits (``20261208T023512Z-3fa9``), so that
    two runs in the same second differ. It names a run; it does not order releases (a run that starts first can
    apply second: each host's applied order does, archfleet.sync.releases)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class RunInfo:
    """One run of a command that changes hosts: what the fleet lock says of its holder and what the release it
    records says of who made it. ``id`` is both the lock's token and the release's id."""

    command: str  # what the operator ran: "sync", "rollback v2ray", "hosts bootstrap"
    message: str | None = None  # the operator's --message
    lock_wait: float = 0.0  # seconds to wait for a held lock (0: refuse at once)
    id: str = field(default_factory=new_run_id)
    operator: str = field(default_factory=operator_name)
