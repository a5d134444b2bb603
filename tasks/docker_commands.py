"""Docker command text, built in one place. Pure: nothing here runs anything or reads a host."""

from __future__ import annotations

from collections.abc import Sequence

from pyinfra.api import QuoteString, StringCommand

from archfleet.errors import InputError

ENGINE_SERVICE = "docker"


def start_engine(init_system: str) -> StringCommand:
    """Start the engine with the host's init system; with none, start dockerd in the background."""
    if init_system == "systemd":
        return StringCommand("systemctl", "start", f"{ENGINE_SERVICE}.service")
    if init_system == "sysvinit":
        return StringCommand("service", ENGINE_SERVICE, "start")
    # The caller waits for the daemon (wait_for_engine), whichever way it was started.
    return StringCommand("nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null &")


def wait_for_engine(seconds: int = 60) -> StringCommand:
    return StringCommand(
        f"for i in $(seq {seconds}); do docker version >/dev/null 2>&1 && exit 0; sleep 1; done;",
        f"echo 'the Docker daemon did not answer in {seconds}s' >&2; exit 1",
    )


def enable_engine(init_system: str) -> StringCommand:
    if init_system == "systemd":
        return StringCommand("systemctl", "enable", f"{ENGINE_SERVICE}.service")
    if init_system == "sysvinit":
        return StringCommand("update-rc.d", ENGINE_SERVICE, "defaults")
    raise InputError(f"cannot enable {ENGINE_SERVICE} at boot: no init system")


def login(address: str, username: str, password_file: str) -> StringCommand:
    """`docker login` with the password read from a root-only file on stdin (never on the command line)."""
    return StringCommand(
        "docker", "login", "--username", QuoteString(username), "--password-stdin", QuoteString(address),
        "<", QuoteString(password_file), ">/dev/null",
    )


def private_directory(*paths: str) -> StringCommand:
    """Directories (and their missing parents) only root can enter."""
    return StringCommand("install", "-d", "-m", "0700", "-o", "root", "-g", "root", *(QuoteString(p) for p in paths))


def own_files(files: Sequence[tuple[str, str, str]]) -> StringCommand:
    """``(owner UID:GID, octal mode, path)`` for each file: chown then chmod, one command for all."""
    parts: list[str | QuoteString] = ["true"]
    for owner, mode, path in files:
        parts += ["&&", "chown", QuoteString(owner), QuoteString(path)]
        parts += ["&&", "chmod", QuoteString(mode), QuoteString(path)]
    return StringCommand(*parts)


def public_directory(path: str) -> StringCommand:
    return StringCommand("install", "-d", "-m", "0755", QuoteString(path))


def chmod(mode: str, path: str) -> StringCommand:
    return StringCommand("chmod", mode, QuoteString(path))
