"""The ``registries`` section: the other registries the fleet's images come from, and how to log in to each.

The fleet's own ``registry:`` is where archfleet publishes; services may also run images from anywhere else
(``redis:7`` is Docker Hub's ``docker.io/library/redis:7``, ``ghcr.io/acme/web:1.2`` is GHCR). A registry that
needs no login (public images) needs no entry. Keys are registry names as they appear in image references
(``docker.io``, ``ghcr.io``, ``host:port``; ``index.docker.io`` is ``docker.io``)::

    registries:
      ghcr.io:                              # GitHub: a personal access token with read:packages
        username: acme-bot
        password_env: GHCR_TOKEN            # or password_file: ~/.archfleet/ghcr-token (chmod 600)
      123456789012.dkr.ecr.eu-west-1.amazonaws.com:
        ecr: true                           # boto3 get_authorization_token; region from the host name
      docker.io:                            # Docker Hub: an access token (and higher pull limits)
        username: acme
        password_file: ~/.archfleet/dockerhub-token
      registry.internal:5000:
        ca_file: certs/internal-ca.crt      # no username: Docker's config.json (credential helpers) or anonymous

Per entry: ``username`` with one of ``password_file`` / ``password_env``; or ``ecr: true`` /
``ecr: {region: R, registry_id: "123456789012"}`` (for a registry that takes ECR tokens under another name);
or neither, and the credentials come from Docker's ``config.json`` (``auths``, ``credsStore``, ``credHelpers``),
else none. ``ca_file``: a PEM CA for a registry whose certificate no public CA signs. Each host is logged in
(by ``deploys/host.py``) to every registry its services pull from that has credentials.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from archfleet.errors import InputError
from archfleet.fleet.registry import check_private_file
from archfleet.references import DOMAIN, canonical_registry, ecr_account, ecr_region
from archfleet.schema import Mapping, Node

if TYPE_CHECKING:
    from archfleet.fleet import Fleet

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")
ACCOUNT = re.compile(r"^\d{12}$")
PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class EcrAuth:
    region: str
    registry_id: str | None = None  # the AWS account id (get_authorization_token's registryIds)


@dataclass(frozen=True)
class RegistryEntry:
    registry: str  # canonical name: docker.io, ghcr.io, host:port
    where: str  # FILE:LINE: registries.NAME (for errors found when the password is read)
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    ca_file: Path | None = None
    ecr: EcrAuth | None = None

    @property
    def source(self) -> str:
        """Where the password comes from, for messages (never the password)."""
        if self.password_env:
            return f"fleet registries.{self.registry} (password_env {self.password_env})"
        return f"fleet registries.{self.registry} (password_file {self.password_file})"

    def password(self) -> str:
        """Read when needed: the file's text (stripped), or the environment variable."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise InputError(f"{self.where}.password_env: ${self.password_env} is not set")
            return value
        assert self.password_file is not None
        try:
            return self.password_file.read_text().strip()
        except OSError as error:
            raise InputError(f"{self.where}.password_file: {self.password_file}: {error.strerror}") from None


def _ca_file(node: Node, path: Path) -> None:
    try:
        head = path.read_bytes()[:65536]
    except OSError as error:
        node.fail(f"CA file {path}: {error.strerror}")
    if PEM_CERTIFICATE not in head:
        node.fail(f"CA file {path} holds no PEM certificate")


def _ecr(section: Mapping, name: str) -> EcrAuth | None:
    node = section.get("ecr")
    if node is None or node.value is None or node.value is False:
        return None
    if node.value is True:
        region = ecr_region(name)
        if region is None:
            node.fail(f"{name} is not an ECR host (ACCOUNT.dkr.ecr.REGION.amazonaws.com): "
                      "write ecr: {region: REGION, registry_id: ACCOUNT}")
        return EcrAuth(region, ecr_account(name))
    settings = Mapping(node)
    region = settings.string("region", None) or ecr_region(name)
    registry_id = settings.string("registry_id", None) or ecr_account(name)
    settings.done()
    if region is None:
        settings.fail("region", "missing: the AWS region of the registry")
    if not REGION.fullmatch(region):
        settings.fail("region", f"{region!r} is not an AWS region (eu-west-1)")
    if registry_id is not None and not ACCOUNT.fullmatch(registry_id):
        settings.fail("registry_id", f"{registry_id!r} is not a 12-digit AWS account id")
    return EcrAuth(region, registry_id)


def parse_entry(name: str, node: Node, base_dir: Path) -> RegistryEntry:
    where = f"{node.where}: {node.path}"
    section = Mapping(node) if node.value is not None else None
    if section is None:
        return RegistryEntry(name, where)
    username = section.string("username", None)
    password_file_text = section.string("password_file", None)
    password_env = section.string("password_env", None)
    ca_text = section.string("ca_file", None)
    ecr = _ecr(section, name)
    section.done()
    if password_file_text is not None and password_env is not None:
        section.fail("password_env", "the password comes from one of password_file and password_env, not both")
    has_password = password_file_text is not None or password_env is not None
    if (username is None) != (not has_password):
        (section.items.get("username") or section.items.get("password_file") or section.items["password_env"]).fail(
            "username goes with password_file or password_env (both, or neither)")
    if ecr is not None and username is not None:
        section.fail("ecr", "ECR logins come from AWS: remove username and password_* (or ecr)")
    if username is not None and (":" in username or not username.strip()):
        section.fail("username", "a user name has no ':' and is not empty")
    if password_env is not None and not ENV_NAME.fullmatch(password_env):
        section.fail("password_env", f"{password_env!r} is not an environment variable name")
    password_file = base_dir / Path(password_file_text).expanduser() if password_file_text else None
    if password_file is not None:
        check_private_file(section.items["password_file"], password_file, "password file")
    ca_file = base_dir / Path(ca_text).expanduser() if ca_text else None
    if ca_file is not None:
        _ca_file(section.items["ca_file"], ca_file)
    return RegistryEntry(name, where, username, password_file, password_env, ca_file, ecr)


def parse_registries(section: Mapping | None, fleet: Fleet) -> dict[str, RegistryEntry]:
    """Every ``registries:`` entry by canonical registry name."""
    if section is None:
        return {}
    own = None if fleet.registry.lab else fleet.registry.address
    entries: dict[str, RegistryEntry] = {}
    for key, node in section.entries():
        if "://" in key or "/" in key or not DOMAIN.fullmatch(key):
            node.fail("a registry is named as in image references: host[:port] (ghcr.io, docker.io, "
                      "registry.internal:5000), without scheme or path")
        name = canonical_registry(key)
        if name in entries:
            node.fail(f"{name} is listed twice (also at {entries[name].where.split(': ')[0]})")
        if own is not None and name == own:
            node.fail(f"{name} is the fleet's own registry: its login is in `registry:`")
        entries[name] = parse_entry(name, node, fleet.base_dir)
    return entries
