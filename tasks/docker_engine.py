"""Operations for a host's Docker engine and its access to a private registry."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Generator
from io import BytesIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand, operation

from archfleet.errors import OperationFailed
from archfleet.facts.docker import DockerEngine
from archfleet.facts.registry import RegistryAccess, ca_path
from archfleet.facts.service_reads import CREDENTIALS_DIR, password_path
from archfleet.tasks import docker_commands
from archfleet.tasks.distros import host_distro


@operation()
def engine_running(enabled: bool = True) -> Generator[StringCommand, None, None]:
    """
    The Docker engine is installed (when missing, the distro's own package: tasks/distros.py), running and, where
    there is an init system, enabled at boot; curl (and OpenBSD's nc where the distro has it) is installed beside
    it when curl is missing (``archfleet sync`` reads the engine's API with nc, else curl: a tenth of the docker
    CLI's cost on every no-op, nc a quarter of curl's). Installing on a distro that is not supported
    fails the host.
    """
    engine = host.get_fact(DockerEngine)
    init = engine["init_system"]
    package_enables_engine = True
    if not engine["installed"]:
        distro = host_distro(engine["distro"], host.name, "installing Docker")
        readers = [] if engine["curl"] else [*distro.curl_packages, *distro.nc_packages]
        yield from distro.install([distro.engine_package, *readers])
        if init == "none" and distro.engine_init_script:
            init = "sysvinit"  # the package brings its init script
        package_enables_engine = distro.package_enables_engine
    elif not engine["curl"]:
        try:
            curl_distro = host_distro(engine["distro"], host.name, "installing curl")
        except OperationFailed as unsupported:  # the engine is there: sync's read falls back to the docker CLI
            host.noop(f"curl not installed ({unsupported}); archfleet sync reads the engine with the docker CLI")
        else:
            yield from curl_distro.install([*curl_distro.curl_packages, *curl_distro.nc_packages])
    if not engine["daemon_running"]:
        yield docker_commands.start_engine(init)
        yield docker_commands.wait_for_engine()
    else:
        host.noop(f"Docker engine {engine['server_version']} is running")
    installed_by_package = not engine["installed"] and package_enables_engine
    if enabled and init != "none" and not engine["enabled_at_boot"] and not installed_by_package:
        yield docker_commands.enable_engine(init)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@operation()
def registry_access(
    address: str, username: str | None = None, password: str | None = None,
    ca_certificate: bytes | str | None = None, refresh_after: int | None = None,
) -> Generator[StringCommand | FileUploadCommand, None, None]:
    """
    Docker on the host trusts ``ca_certificate`` (PEM) for the registry at ``address`` (when given) and is logged in to
    it (when ``username`` is given). The password is uploaded to a root-only file and fed to `docker login` on
    stdin. A password that is the same every run (a fleet password, a helper's) is compared by its sha256; one
    that is new every run (an ECR token) passes ``refresh_after``: the login is renewed only when it is older
    than that many seconds.
    """
    state = host.get_fact(RegistryAccess, address=address)
    ca = ca_certificate.encode() if isinstance(ca_certificate, str) else ca_certificate
    if ca is not None and state["ca_sha256"] != sha256(ca):
        dest = ca_path(address)
        yield docker_commands.public_directory(posixpath.dirname(dest))
        yield FileUploadCommand(BytesIO(ca), dest)
        yield docker_commands.chmod("0644", dest)
    if username is None or password is None:
        host.noop(f"{address}: no login (anonymous pulls)")
        return
    secret = password.encode()
    if refresh_after is None:
        stale = state["password_sha256"] != sha256(secret)
    else:
        age = state["login_age"]
        stale = age is None or age >= refresh_after
    if stale:
        yield docker_commands.private_directory(CREDENTIALS_DIR)
        yield FileUploadCommand(BytesIO(secret), password_path(address))
        yield docker_commands.chmod("0600", password_path(address))
    if stale or not state["logged_in"]:
        yield docker_commands.login(address, username, password_path(address))
    elif refresh_after is not None:
        host.noop(f"logged in to {address} {state['login_age']} s ago (renewed after {refresh_after} s)")
    else:
        host.noop(f"logged in to {address}")
