"""Operations for a host's Docker engine and its access to a private registry."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Generator
from io import BytesIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.facts.server import Which

from archfleet.errors import OperationFailed
from archfleet.facts.docker import DockerEngine
from archfleet.facts.registry import CREDENTIALS_DIR, RegistryAccess, ca_path, password_path
from archfleet.tasks import apt_commands, docker_commands

DEBIAN_ENGINE_PACKAGE = "docker.io"


@operation()
def engine_running(enabled: bool = True) -> Generator[StringCommand, None, None]:
    """
    The Docker engine is installed (Debian's ``docker.io`` when missing), running and, where there is
    an init system, enabled at boot.
    """
    engine = host.get_fact(DockerEngine)
    if not engine["installed"]:
        if not host.get_fact(Which, command="apt-get"):
            raise OperationFailed(f"{host.name}: Docker is not installed and this is not a Debian/Ubuntu host")
        yield apt_commands.apt_update()
        yield apt_commands.apt_install([DEBIAN_ENGINE_PACKAGE])
    if not engine["daemon_running"]:
        init = engine["init_system"]
        if not engine["installed"] and init == "none":
            # The package brings its init script; look again after installing.
            init = "sysvinit"
        yield docker_commands.start_engine(init)
        yield docker_commands.wait_for_engine()
    else:
        host.noop(f"Docker engine {engine['server_version']} is running")
    if enabled and engine["installed"] and engine["init_system"] != "none" and not engine["enabled_at_boot"]:
        yield docker_commands.enable_engine(engine["init_system"])


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
