"""What a host holds for a private registry: the CA Docker trusts for it, and the login."""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import FactBase, QuoteString, StringCommand

DOCKER_CERTS_DIR = "/etc/docker/certs.d"
CREDENTIALS_DIR = "/etc/archfleet/registry"
DOCKER_CONFIG = "/root/.docker/config.json"


def ca_path(address: str) -> str:
    return f"{DOCKER_CERTS_DIR}/{address}/ca.crt"


def password_path(address: str) -> str:
    return f"{CREDENTIALS_DIR}/{address}.password"


class RegistryAccessState(TypedDict):
    ca_sha256: str | None
    password_sha256: str | None
    logged_in: bool


class RegistryAccess(FactBase[RegistryAccessState]):
    """
    For the registry at ``address``: the sha256 of the CA certificate Docker trusts for it, the sha256
    of the password file archfleet logged in with, and whether Docker's config holds a login for it.
    """

    def command(self, address: str) -> StringCommand:
        return StringCommand(
            "for f in", QuoteString(ca_path(address)), QuoteString(password_path(address)), ";",
            "do if [ -f \"$f\" ]; then sha256sum \"$f\"; else echo \"- $f\"; fi; done;",
            "if grep -qF", QuoteString(f'"{address}"'), DOCKER_CONFIG, "2>/dev/null;",
            "then echo login=yes; else echo login=no; fi",
        )

    def process(self, output: list[str]) -> RegistryAccessState:
        hashes: list[str | None] = []
        logged_in = False
        for line in output:
            line = line.strip()
            if line.startswith("login="):
                logged_in = line == "login=yes"
            elif line:
                digest = line.split()[0]
                hashes.append(None if digest == "-" else digest)
        hashes += [None, None]
        return {"ca_sha256": hashes[0], "password_sha256": hashes[1], "logged_in": logged_in}
