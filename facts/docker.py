"""The Docker engine on a host, from one command."""

from __future__ import annotations

from typing import Any, TypedDict

from pyinfra.api import FactBase

from archfleet.facts.distro import DISTRO_COMMAND, Distro, distro_from, is_distro_line
from archfleet.platforms import UnknownPlatform, from_uname

# One shell command: the distro (facts/distro.py), how the engine is started at boot and whether it is enabled
# (asked before the engine, so a host without Docker says it too), is curl there (the no-op sync's read asks the
# engine's API with it: facts/service_reads.py), is the client there, does the daemon answer
# (and what is it), is buildx there.
DOCKER_ENGINE_COMMAND = (
    f"{DISTRO_COMMAND}; "
    "if [ -d /run/systemd/system ]; then echo 'init=systemd'; "
    "systemctl is-enabled docker.service 2>/dev/null | sed 's/^/boot=/'; "
    "elif [ -x /etc/init.d/docker ]; then echo 'init=sysvinit'; "
    "if ls /etc/rc2.d/S*docker >/dev/null 2>&1; then echo 'boot=enabled'; else echo 'boot=disabled'; fi; "
    "else echo 'init=none'; fi; "
    "if command -v curl >/dev/null 2>&1; then echo 'curl=yes'; else echo 'curl=no'; fi; "
    "if ! command -v docker >/dev/null 2>&1; then echo 'installed=no'; exit 0; fi; "
    "echo 'installed=yes'; "
    "docker version --format "
    "'client={{.Client.Version}}{{if .Server}}\nserver={{.Server.Version}}\nserver_os={{.Server.Os}}"
    "\nserver_arch={{.Server.Arch}}{{end}}' 2>/dev/null; "
    "echo \"version_exit=$?\"; "
    "docker buildx version 2>/dev/null | sed 's/^/buildx=/'"
)


class DockerEngineState(TypedDict):
    installed: bool
    client_version: str | None
    server_version: str | None
    daemon_running: bool
    server_platform: str | None
    buildx_version: str | None
    init_system: str
    enabled_at_boot: bool
    curl: bool  # curl is on the PATH
    distro: Distro


class DockerEngine(FactBase[DockerEngineState]):
    """
    The Docker engine: installed or not, client and server versions, whether the daemon answers,
    the server's OCI platform (``linux/arm64``), the buildx plugin's version (``None`` without it),
    the init system that starts it (``systemd``, ``sysvinit`` or ``none``), whether it is enabled at boot, and
    the host's distro (``/etc/os-release`` and its package managers, read even where Docker is not installed).
    """

    def command(self) -> str:
        return DOCKER_ENGINE_COMMAND

    def process(self, output: list[str]) -> DockerEngineState:
        values: dict[str, Any] = {}
        for line in output:
            if is_distro_line(line):
                continue
            key, sep, value = line.strip().partition("=")
            if sep:
                values.setdefault(key, value.strip())
        installed = values.get("installed") == "yes"
        server_version = values.get("server") or None
        platform = None
        if server_version and values.get("server_os") and values.get("server_arch"):
            try:
                platform = str(from_uname(values["server_os"], values["server_arch"]))
            except UnknownPlatform:
                platform = f"{values['server_os']}/{values['server_arch']}"
        buildx = values.get("buildx")
        return {
            "installed": installed,
            "client_version": values.get("client") or None,
            "server_version": server_version,
            "daemon_running": installed and server_version is not None and values.get("version_exit") == "0",
            "server_platform": platform,
            "buildx_version": buildx.split()[1].lstrip("v") if buildx and len(buildx.split()) > 1 else None,
            "init_system": values.get("init", "none"),
            "enabled_at_boot": values.get("boot") == "enabled",
            "curl": values.get("curl") == "yes",
            "distro": distro_from(output),
        }
