"""The distros the host bootstrap supports and what differs between them, chosen once, here, from the distro fact
(facts/distro.py, which ``DockerEngine`` and ``SpotWatcher`` carry). Operations read a ``HostDistro`` instead of
asking "is this Debian?" again; a distro not in ``SUPPORTED`` fails the host with one line (never a guess from
``ID_LIKE`` or from whichever package manager happens to be there).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api import StringCommand

from archfleet.errors import OperationFailed
from archfleet.facts.distro import Distro
from archfleet.tasks import apt_commands, dnf_commands


@dataclass(frozen=True)
class HostDistro:
    name: str  # "Debian 12", for messages
    package_manager: str  # "apt-get" or "dnf"
    engine_package: str  # the distro's own Docker engine package
    engine_init_script: bool  # the engine package brings /etc/init.d/docker (used where no systemd runs)
    package_enables_engine: bool  # installing the engine package enables it at boot by itself
    curl_packages: tuple[str, ...]  # curl (sync's engine read, the spot watcher) and the CA bundle
    # what sync's engine read asks first, where the distro has it: OpenBSD's nc (facts/service_reads.py)
    nc_packages: tuple[str, ...]
    init_scripts: bool  # update-rc.d and start-stop-daemon exist (the spot watcher's init script without systemd)

    def install(self, packages: list[str]) -> list[StringCommand]:
        if self.package_manager == "apt-get":
            return [apt_commands.apt_update(), apt_commands.apt_install(packages)]
        return [dnf_commands.dnf_install(packages)]


def _debian_family(name: str) -> HostDistro:
    # Debian's and Ubuntu's docker.io: its postinst enables the engine (systemd unit, or update-rc.d links).
    return HostDistro(name=name, package_manager="apt-get", engine_package="docker.io", engine_init_script=True,
                      package_enables_engine=True, curl_packages=("curl", "ca-certificates"),
                      nc_packages=("netcat-openbsd",), init_scripts=True)


# (ID, VERSION_ID) from /etc/os-release -> what differs there.
SUPPORTED: dict[tuple[str, str], HostDistro] = {
    ("debian", "12"): _debian_family("Debian 12"),
    ("debian", "13"): _debian_family("Debian 13"),
    ("ubuntu", "22.04"): _debian_family("Ubuntu 22.04"),
    ("ubuntu", "24.04"): _debian_family("Ubuntu 24.04"),
    # Amazon Linux 2023's docker: a systemd unit only, disabled after install; curl-minimal is its curl (the full
    # curl package conflicts with it); its nc is nmap's ncat (other options): sync reads the engine with curl.
    ("amzn", "2023"): HostDistro(name="Amazon Linux 2023", package_manager="dnf", engine_package="docker",
                                 engine_init_script=False, package_enables_engine=False,
                                 curl_packages=("curl-minimal", "ca-certificates"), nc_packages=(),
                                 init_scripts=False),
}


def supported_names() -> str:
    return ", ".join(distro.name for distro in SUPPORTED.values())


def describe(distro: Distro) -> str:
    """How a message names a host's distro: its PRETTY_NAME and the two values the choice is made on."""
    if distro["id"] is None:
        return "an unknown distro (no /etc/os-release)"
    pretty = distro["pretty_name"] or distro["id"]
    return f"{pretty} (ID={distro['id']}, VERSION_ID={distro['version_id'] or 'none'})"


def host_distro(distro: Distro, host_name: str, needed_for: str) -> HostDistro:
    """The supported distro the fact names, with its package manager present; else one line naming the host."""
    chosen = SUPPORTED.get((distro["id"] or "", distro["version_id"] or ""))
    if chosen is None:
        raise OperationFailed(f"{host_name}: {needed_for} on {describe(distro)} is not supported; "
                              f"supported distros: {supported_names()}")
    if chosen.package_manager not in distro["package_managers"]:
        raise OperationFailed(f"{host_name}: {needed_for}: {chosen.name} without {chosen.package_manager} "
                              "on the PATH")
    return chosen
