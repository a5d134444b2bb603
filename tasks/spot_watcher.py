"""The spot interruption watcher: an operation that installs and runs it, and the pure builders of its config and
commands. The watcher itself is ``tasks/resources/spot-watcher.sh`` (POSIX sh + curl, so a minimal Debian needs
only curl): it polls IMDSv2 every 5 seconds and, on a notice, stops the listed containers in order.

Runs as a sysvinit service (``/etc/init.d/archfleet-spot-watcher`` + ``update-rc.d``, as Debian's docker.io does)
or, where systemd runs, as ``archfleet-spot-watcher.service``. Log: ``/var/log/archfleet-spot-watcher.log``.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Generator, Sequence
from io import BytesIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation

from archfleet.errors import InputError, OperationFailed
from archfleet.facts.spot_watcher import CONFIG_PATH, INIT_SCRIPT_PATH, NAME, SCRIPT_PATH, UNIT_PATH, SpotWatcher
from archfleet.tasks.distros import host_distro

RESOURCES = Path(__file__).parent / "resources"
DEFAULT_METADATA_URL = "http://169.254.169.254"
LOG_PATH = "/var/log/archfleet-spot-watcher.log"
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
URL = re.compile(r"^https?://[A-Za-z0-9.:\[\]-]+/?$")


def watcher_config(metadata_url: str, stop_order: Sequence[str], interval: int = 5, stop_timeout: int = 30) -> str:
    """The config file: ``key=value`` lines, one ``stop=`` per container in the order they are stopped."""
    if not URL.fullmatch(metadata_url):
        raise InputError(f"spot watcher: metadata address {metadata_url!r} is not an http(s)://host[:port] URL")
    for name in stop_order:
        if not CONTAINER_NAME.fullmatch(name):
            raise InputError(f"spot watcher: {name!r} is not a container name")
    lines = [
        "# Written by archfleet (tasks/spot_watcher.py); containers are stopped in the order of the stop= lines.",
        f"metadata_url={metadata_url.rstrip('/')}",
        f"interval={int(interval)}",
        f"stop_timeout={int(stop_timeout)}",
        f"log={LOG_PATH}",
        *(f"stop={name}" for name in stop_order),
    ]
    return "\n".join(lines) + "\n"


def stop_order_from(value: object) -> list[str]:
    """Host data ``spot_stop_order``: a list, or a comma-separated string (``--data spot_stop_order=a,b``)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return [str(part) for part in value]
    raise InputError(f"spot_stop_order: expected a list of container names, got {value!r}")


def service(init_system: str, action: str) -> StringCommand:
    if init_system == "systemd":
        return StringCommand("systemctl", action, f"{NAME}.service")
    return StringCommand(INIT_SCRIPT_PATH, action)


def enable(init_system: str) -> StringCommand:
    if init_system == "systemd":
        return StringCommand("systemctl", "enable", f"{NAME}.service")
    return StringCommand("update-rc.d", NAME, "defaults")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def watcher_files(init_system: str, config: str) -> dict[str, tuple[str, str]]:
    """Path -> (content, mode) of what the watcher needs on a host with this init system."""
    files = {
        SCRIPT_PATH: ((RESOURCES / "spot-watcher.sh").read_text(), "0755"),
        CONFIG_PATH: (config, "0644"),
    }
    if init_system == "systemd":
        files[UNIT_PATH] = ((RESOURCES / "spot-watcher.service").read_text(), "0644")
    else:
        files[INIT_SCRIPT_PATH] = ((RESOURCES / "spot-watcher.init").read_text(), "0755")
    return files


@operation()
def interruption_watcher(
    metadata_url: str = DEFAULT_METADATA_URL, stop_order: Sequence[str] = (), interval: int = 5,
    stop_timeout: int = 30,
) -> Generator[StringCommand | FileUploadCommand, None, None]:
    """
    The spot interruption watcher is installed (curl from the distro's packages when missing: tasks/distros.py),
    configured to poll ``metadata_url`` every ``interval`` seconds and stop ``stop_order`` (container names, in
    order), enabled at boot and running. A changed script or config restarts it. Where no systemd runs it is an
    init script, which only the Debian family's tools run.
    """
    state = host.get_fact(SpotWatcher)
    init = state["init_system"]
    files = watcher_files(init, watcher_config(metadata_url, stop_order, interval, stop_timeout))
    stale = {path: file for path, file in files.items() if state["files"].get(path) != _sha256(file[0])}
    init_script_work = init != "systemd" and bool(stale or not state["enabled_at_boot"] or not state["running"])
    if not state["curl"] or init_script_work:
        # Installing curl, and an init script's tools, differ per distro; a watcher already in place does not ask.
        distro = host_distro(state["distro"], host.name, "the spot interruption watcher")
        if init_script_work and not distro.init_scripts:
            raise OperationFailed(f"{host.name}: the spot interruption watcher needs systemd on {distro.name} "
                                  "(no update-rc.d or start-stop-daemon for an init script there)")
        if not state["curl"]:
            yield from distro.install(list(distro.curl_packages))
    for path, (content, mode) in stale.items():
        yield StringCommand("install", "-d", "-m", "0755", QuoteString(posixpath.dirname(path)))
        yield FileUploadCommand(BytesIO(content.encode()), path)
        yield StringCommand("chmod", mode, QuoteString(path))
    changed = bool(stale)
    if changed and init == "systemd":
        yield StringCommand("systemctl", "daemon-reload")
    if not state["enabled_at_boot"]:
        yield enable(init)
    if state["running"] and changed:
        yield service(init, "restart")
    elif not state["running"]:
        yield service(init, "start")
    elif state["curl"] and state["enabled_at_boot"]:
        host.noop("the spot interruption watcher is installed, enabled and running")
