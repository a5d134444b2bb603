"""The spot interruption watcher on a host (files, curl, init system, enabled, running), from one command."""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import FactBase

from archfleet.facts.distro import DISTRO_COMMAND, Distro, distro_from, is_distro_line

NAME = "archfleet-spot-watcher"
SCRIPT_PATH = f"/usr/local/sbin/{NAME}"
CONFIG_PATH = "/etc/archfleet/spot-watcher.conf"
INIT_SCRIPT_PATH = f"/etc/init.d/{NAME}"
UNIT_PATH = f"/etc/systemd/system/{NAME}.service"
PID_FILE = f"/run/{NAME}.pid"
FILES = (SCRIPT_PATH, CONFIG_PATH, INIT_SCRIPT_PATH, UNIT_PATH)

SPOT_WATCHER_COMMAND = (
    f"{DISTRO_COMMAND}; "
    f"for f in {' '.join(FILES)}; do "
    'if [ -f "$f" ]; then sha256sum "$f"; fi; done; '
    "if command -v curl >/dev/null 2>&1; then echo curl=yes; else echo curl=no; fi; "
    "if [ -d /run/systemd/system ]; then echo init=systemd; "
    f"systemctl is-enabled {NAME}.service 2>/dev/null | sed 's/^/boot=/'; "
    f"if systemctl is-active --quiet {NAME}.service; then echo running=yes; else echo running=no; fi; "
    "else echo init=sysvinit; "
    f"if ls /etc/rc2.d/S*{NAME} >/dev/null 2>&1; then echo boot=enabled; else echo boot=disabled; fi; "
    f'if [ -f {PID_FILE} ] && kill -0 "$(cat {PID_FILE})" 2>/dev/null; then echo running=yes; '
    "else echo running=no; fi; fi"
)


class SpotWatcherState(TypedDict):
    files: dict[str, str]  # path -> sha256, for the watcher's files that exist
    curl: bool
    init_system: str  # systemd | sysvinit
    enabled_at_boot: bool
    running: bool
    distro: Distro


class SpotWatcher(FactBase[SpotWatcherState]):
    """
    The spot interruption watcher: the sha256 of each of its files present (script, config, init script or
    unit), whether curl is installed, the init system (``systemd`` or ``sysvinit``), whether the watcher is
    enabled at boot, whether it runs, and the host's distro (facts/distro.py: curl and init scripts differ).
    """

    def command(self) -> str:
        return SPOT_WATCHER_COMMAND

    def process(self, output: list[str]) -> SpotWatcherState:
        files: dict[str, str] = {}
        values: dict[str, str] = {}
        for line in output:
            if is_distro_line(line):
                continue
            line = line.strip()
            digest, _, path = line.partition("  ")
            if path in FILES and len(digest) == 64:
                files[path] = digest
                continue
            key, sep, value = line.partition("=")
            if sep:
                values.setdefault(key, value.strip())
        return {
            "files": files,
            "curl": values.get("curl") == "yes",
            "init_system": values.get("init", "sysvinit"),
            "enabled_at_boot": values.get("boot") == "enabled",
            "running": values.get("running") == "yes",
            "distro": distro_from(output),
        }
