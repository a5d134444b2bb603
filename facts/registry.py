"""What a host holds for a registry: the CA Docker trusts for it, and the login (and how old the login is)."""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import FactBase, QuoteString, StringCommand

from archfleet.facts.service_reads import password_path
from archfleet.references import docker_config_key

DOCKER_CERTS_DIR = "/etc/docker/certs.d"
DOCKER_CONFIG = "/root/.docker/config.json"


def ca_path(address: str) -> str:
    return f"{DOCKER_CERTS_DIR}/{address}/ca.crt"


class RegistryAccessState(TypedDict):
    ca_sha256: str | None
    password_sha256: str | None
    logged_in: bool
    login_age: int | None  # seconds since archfleet last wrote the password it logged in with (None: never)


class RegistryAccess(FactBase[RegistryAccessState]):
    """
    For the registry at ``address``: the sha256 of the CA certificate Docker trusts for it, the sha256
    of the password file archfleet logged in with and its age in seconds (the login's age: ECR passwords last
    12 hours), and whether Docker's config holds a login for it (Docker Hub's key is its index URL).
    """

    def command(self, address: str) -> StringCommand:
        password = QuoteString(password_path(address))
        return StringCommand(
            "for f in", QuoteString(ca_path(address)), password, ";",
            "do if [ -f \"$f\" ]; then sha256sum \"$f\"; else echo \"- $f\"; fi; done;",
            "if [ -f", password, "]; then echo age=$(( $(date +%s) - $(stat -c %Y", password, ") )); fi;",
            "if grep -qF", QuoteString(f'"{docker_config_key(address)}"'), DOCKER_CONFIG, "2>/dev/null;",
            "then echo login=yes; else echo login=no; fi",
        )

    def process(self, output: list[str]) -> RegistryAccessState:
        hashes: list[str | None] = []
        logged_in = False
        age: int | None = None
        for line in output:
            line = line.strip()
            if line.startswith("login="):
                logged_in = line == "login=yes"
            elif line.startswith("age="):
                value = line.removeprefix("age=")
                age = max(int(value), 0) if value.lstrip("-").isdigit() else None
            elif line:
                digest = line.split()[0]
                hashes.append(None if digest == "-" else digest)
        hashes += [None, None]
        return {"ca_sha256": hashes[0], "password_sha256": hashes[1], "logged_in": logged_in, "login_age": age}
