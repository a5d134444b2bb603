"""The one ssh command line archfleet uses outside pyinfra: host key checking on, no prompts, no agent keys."""

from __future__ import annotations

from collections.abc import Sequence


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
