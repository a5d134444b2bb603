"""Where a registry's credentials come from, in the order archfleet asks:

1. the fleet file: ``registry:`` (the fleet's own registry) and ``registries:`` entries with ``username`` and a
   password from ``password_file`` or ``password_env`` (never written in the YAML);
2. Amazon ECR: ``registries: {HOST: {ecr: ...}}``, or any ``ACCOUNT.dkr.ecr.REGION.amazonaws.com`` host:
   boto3's ``get_authorization_token`` (user ``AWS``, a password that lasts 12 hours);
3. Docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``), as Docker reads it:
   ``credHelpers[registry]`` names a helper program for that registry, else ``credsStore`` is the helper for every
   registry, else ``auths[registry].auth`` (base64 ``user:password``) or ``identitytoken``. A helper is run as
   ``docker-credential-NAME get`` with the server on stdin, answering ``{"ServerURL", "Username", "Secret"}``;
4. none: anonymous (public repositories; a token registry then hands out anonymous pull tokens).

Secrets are read when needed and kept in memory only; a helper gets the server name on stdin, never in argv.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archfleet.errors import InputError, OperationFailed
from archfleet.references import canonical_registry, docker_config_key, ecr_account, ecr_region
from archfleet.run import say

if TYPE_CHECKING:
    from archfleet.fleet import Fleet
    from archfleet.fleet.registries import EcrAuth, RegistryEntry

IDENTITY_TOKEN_USER = "<token>"  # a helper's Username for an identity (refresh) token, as Docker's protocol says
ECR_USER = "AWS"
ECR_TOKEN_HOURS = 12
HELPER_TIMEOUT = 30
HELPER_NOT_FOUND = "credentials not found"


@dataclass(frozen=True)
class Credentials:
    """A user and secret for one registry, and where they came from (named in errors, never the secret)."""

    username: str
    secret: str
    source: str
    expires_at: float | None = None  # epoch seconds (ECR tokens); None: does not expire

    @property
    def identity_token(self) -> bool:
        """Docker's identity (refresh) token: sent to a token service as an OAuth2 refresh_token, not Basic."""
        return self.username == IDENTITY_TOKEN_USER

    def expired(self, margin: float = 300) -> bool:
        return self.expires_at is not None and self.expires_at - margin < time.time()


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (as the docker CLI looks)."""
    folder = os.environ.get("DOCKER_CONFIG")
    return (Path(folder) if folder else Path.home() / ".docker") / "config.json"


def config_hostname(key: str) -> str:
    """A config.json key as a registry name: scheme and path dropped (``https://ghcr.io/v1/`` -> ``ghcr.io``)."""
    text = key.split("://", 1)[-1]
    return canonical_registry(text.split("/", 1)[0])


def read_docker_config(path: Path | None = None) -> dict[str, Any]:
    path = path or docker_config_path()
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a Docker config file: {error}") from None
    return value if isinstance(value, dict) else {}


def run_helper(helper: str, server: str) -> Credentials | None:
    """``docker-credential-HELPER get`` with ``server`` on stdin (Docker's credential helper protocol)."""
    program = f"docker-credential-{helper}"
    try:
        result = subprocess.run([program, "get"], input=server, capture_output=True, text=True,
                                timeout=HELPER_TIMEOUT, check=False)
    except FileNotFoundError:
        raise InputError(f"Docker's config names the credential helper {helper!r}, but {program} is not on "
                         f"PATH") from None
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"{program} get {server}: no answer in {HELPER_TIMEOUT} s") from None
    if result.returncode != 0:
        said = (result.stdout.strip() or result.stderr.strip()).splitlines()
        if said and HELPER_NOT_FOUND in said[0].lower():
            return None
        raise OperationFailed(f"{program} get {server}: {said[0] if said else f'exit {result.returncode}'}")
    try:
        answer = json.loads(result.stdout)
        username, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError):
        raise OperationFailed(f"{program} get {server}: the answer is not {{ServerURL, Username, Secret}} "
                              f"JSON") from None
    return Credentials(username, secret, f"credential helper {program}")


def from_docker_config(registry: str, config: dict[str, Any]) -> Credentials | None:
    """The credentials Docker itself would use for ``registry`` (helpers first, then ``auths``)."""
    server = docker_config_key(registry)
    helpers = {config_hostname(k): v for k, v in (config.get("credHelpers") or {}).items()}
    helper = helpers.get(registry) or config.get("credsStore")
    if helper:
        return run_helper(str(helper), server)
    for key, entry in (config.get("auths") or {}).items():
        if config_hostname(key) != registry or not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return Credentials(IDENTITY_TOKEN_USER, str(entry["identitytoken"]), "Docker config.json auths")
        if entry.get("auth"):
            try:
                username, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise InputError(f"{docker_config_path()}: auths[{key!r}].auth is not base64 user:password") from None
            return Credentials(username, secret, "Docker config.json auths")
        if entry.get("username") and entry.get("password"):
            return Credentials(str(entry["username"]), str(entry["password"]), "Docker config.json auths")
    return None


def from_ecr(registry: str, region: str, registry_id: str | None) -> Credentials:
    """An ECR login from boto3's ``get_authorization_token`` (AWS credentials and endpoint from boto3's own
    configuration: ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``...). The token decodes to ``AWS:PASSWORD``."""
    import boto3
    import botocore.exceptions

    try:
        client = boto3.session.Session(region_name=region).client("ecr")
        kwargs: dict[str, Any] = {"registryIds": [registry_id]} if registry_id else {}
        data = client.get_authorization_token(**kwargs)["authorizationData"][0]
    except botocore.exceptions.NoCredentialsError:
        raise InputError(f"registry {registry}: ECR needs AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID...)"
                         ) from None
    except botocore.exceptions.ClientError as error:
        raise OperationFailed(f"registry {registry}: ECR get_authorization_token in {region}: "
                              f"{error.response.get('Error', {}).get('Message', error)}") from None
    except botocore.exceptions.BotoCoreError as error:
        raise OperationFailed(f"registry {registry}: ECR get_authorization_token in {region}: {error}") from None
    username, _, secret = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    expires = data.get("expiresAt")
    expires_at = expires.timestamp() if hasattr(expires, "timestamp") else None
    if expires_at is None or expires_at < time.time():  # a token service that says nothing useful: 12 hours
        expires_at = time.time() + ECR_TOKEN_HOURS * 3600
    return Credentials(username or ECR_USER, secret, f"ECR get_authorization_token ({region})", expires_at)


def ecr_settings(registry: str, entry: RegistryEntry | None) -> EcrAuth | None:
    """The ECR settings for ``registry``: the fleet entry's ``ecr:``, else those its ECR host name implies."""
    from archfleet.fleet.registries import EcrAuth

    if entry is not None and entry.ecr is not None:
        return entry.ecr
    if entry is not None and entry.username is not None:
        return None
    region = ecr_region(registry)
    return EcrAuth(region, ecr_account(registry)) if region else None


_CACHE: dict[str, Credentials | None] = {}


def credentials_for(registry: str, entry: RegistryEntry | None = None,
                    docker_config: dict[str, Any] | None = None) -> Credentials | None:
    """The credentials for ``registry`` (a canonical registry name: ``docker.io``, ``ghcr.io``, ``host:port``),
    from the first source that has them (see the module's doc), or None (anonymous). Cached per process, ECR
    tokens until they expire (a ``docker_config`` given by the caller is read afresh)."""
    registry = canonical_registry(registry)
    if docker_config is None and registry in _CACHE:
        cached = _CACHE[registry]
        if cached is None or not cached.expired():
            return cached
    found: Credentials | None
    if entry is not None and entry.username is not None:
        found = Credentials(entry.username, entry.password(), entry.source)
    elif (ecr := ecr_settings(registry, entry)) is not None:
        found = from_ecr(registry, ecr.region, ecr.registry_id)
    else:
        found = from_docker_config(registry, read_docker_config() if docker_config is None else docker_config)
    _CACHE[registry] = found
    return found


def forget_cached() -> None:
    """Drop every cached credential (tests; a long-running process after a rotation)."""
    _CACHE.clear()


ECR_REFRESH_AFTER = 11 * 3600  # renew a host's ECR login after 11 h: the 12-hour token, an hour kept for a rollout


@dataclass(frozen=True)
class RegistryLogin:
    """A login a host needs: the registry, its credentials (None: anonymous), the CA to trust for it, and after
    how many seconds the login is renewed (ECR; None: when the password changes)."""

    registry: str
    credentials: Credentials | None
    ca_file: Path | None = None
    refresh_after: int | None = None


def host_logins(fleet: Fleet, host_name: str) -> list[RegistryLogin]:
    """The registries ``host_name``'s services pull from (the fleet's own, Docker Hub, GHCR, ECR...), each with
    the credentials and CA archfleet has for it, sorted by registry."""
    from archfleet.fleet import service_reference
    from archfleet.references import parse

    if fleet.placement is None:
        return []
    registries = sorted({parse(service_reference(fleet, spec)).registry
                         for spec in fleet.placement.services_on(host_name)})
    own = fleet_registry_login(fleet)
    logins = []
    for registry in registries:
        if registry == own.registry:
            logins.append(own)
            continue
        entry = fleet.registries.get(registry)
        found = credentials_for(registry, entry)
        refresh = ECR_REFRESH_AFTER if found is not None and found.expires_at is not None else None
        logins.append(RegistryLogin(registry, found, entry.ca_file if entry else None, refresh))
    return logins



def fleet_registry_login(fleet: Fleet) -> RegistryLogin:
    """The fleet's own registry (``registry:``; ``{lab: true}`` read from the running lab's record) as a login: its
    address, its user and password (None: a registry without login) and its CA."""
    own = fleet.registry.resolve()
    assert own.address is not None  # a resolved registry always has one (the section is required)
    password = own.password()
    credentials = Credentials(own.username, password, "fleet registry") if own.username and password else None
    return RegistryLogin(own.address, credentials, own.ca_file)


def fleet_holds(fleet: Fleet, host_name: str) -> bool:
    """Whether the fleet file speaks for ``host_name``: a host of its ``inventory:`` (every host, when the file
    names no inventory)."""
    return fleet.hosts is None or fleet.hosts.get_host(host_name, None) is not None


def host_registry_login(host_data: Any, host_name: str, fleet: Fleet | None) -> RegistryLogin | None:
    """The registry a host trusts and logs in to for the fleet (``deploys/host.py``): from its host data
    (``registry_address``, ``registry_username``, ``registry_password_file``, ``registry_ca_file``, as the lab's
    inventory gives them), else the fleet file's ``registry:`` when the fleet speaks for the host (an EC2 instance
    of ``inventories/ec2.py`` has no registry data); None: neither."""
    address = host_data.get("registry_address")
    if not address:
        return fleet_registry_login(fleet) if fleet is not None and fleet_holds(fleet, host_name) else None
    username, password_file = host_data.get("registry_username"), host_data.get("registry_password_file")
    credentials = None
    if username:
        try:
            password = Path(password_file).read_text().strip()
        except (OSError, TypeError) as error:
            raise InputError(f"{host_name}: host data registry_password_file {password_file!r}: cannot read the "
                             f"registry password: {getattr(error, 'strerror', None) or error}") from None
        credentials = Credentials(str(username), password, "host data registry_password_file")
    ca_file = host_data.get("registry_ca_file")
    return RegistryLogin(str(address), credentials, Path(ca_file) if ca_file else None)


# --- the fleet's secret version key ----------------------------------------------------------------------------
# A service's files and secrets land on a host in a folder named after their version (services/desired.py). The
# version is an HMAC-SHA256 under this key, never a plain hash of the value: a folder name is in `docker create`'s
# argv, `docker inspect`, spot user-data and SSM parameter names, where a plain hash would let anyone who reads it
# test guesses of a weak secret offline. The key is 32 random bytes (hex), 0600, generated once on the controller
# beside the fleet's generated secrets (~/.config/archfleet/); ARCHFLEET_SECRET_VERSION_KEY_FILE names another file
# (one key per fleet). Another controller of the same fleet needs a copy: with a key of its own it would name every
# file anew, and its syncs would recreate the containers that mount them (and the next sync from here back again).
# So the load never makes it: a sync does (archfleet.services.fleet_secrets), only when no host holds a file named
# with a key, and refuses while one does; the other commands that render files make it when it is missing.

SECRET_VERSION_KEY_ENV = "ARCHFLEET_SECRET_VERSION_KEY_FILE"
SECRET_VERSION_KEY_BYTES = 32


def secret_version_key_path() -> Path:
    """``$ARCHFLEET_SECRET_VERSION_KEY_FILE``, else ``$XDG_CONFIG_HOME/archfleet/secret-version-key`` (default
    ``~/.config/archfleet/secret-version-key``)."""
    named = os.environ.get(SECRET_VERSION_KEY_ENV)
    if named:
        return Path(named).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "archfleet" / "secret-version-key"


def _generate_secret_version_key(path: Path, key: bytes | None = None) -> bool:
    """Write ``key`` (default: a new one) to ``path`` (0600, its folder 0700 if new) unless a file is there by
    then (False): written aside and linked into place, so that another process never reads half a key and two
    never write two keys."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    aside = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write((key or secrets.token_bytes(SECRET_VERSION_KEY_BYTES)).hex() + "\n")
        try:
            os.link(aside, path)
        except FileExistsError:
            return False
    finally:
        aside.unlink()
    say(f"generated the secret version key {path} (0600): the version names of the fleet's files and secrets are "
        f"keyed by it; copy it to any other controller of this fleet ({SECRET_VERSION_KEY_ENV} may name it)")
    return True


def write_secret_version_key(key: bytes) -> bool:
    """Write a key a sync generated in memory (archfleet.services.fleet_secrets) to its file; False when a file is
    there by then (nothing written)."""
    return _generate_secret_version_key(secret_version_key_path(), key)


def secret_version_key() -> bytes:
    """The key secret versions are named with (see above): read from its file, generated there if there is none.
    A key readable by group or others, or not 64 hex digits, is refused (never replaced)."""
    path = secret_version_key_path()
    if not path.exists() and not path.is_symlink():
        _generate_secret_version_key(path)
    try:
        info = path.stat()
        text = path.read_text().strip()
    except OSError as error:
        raise InputError(f"secret version key {path}: {error.strerror}") from None
    if info.st_mode & 0o077:
        raise InputError(f"secret version key {path} is readable by others (mode {info.st_mode & 0o777:04o}): "
                         f"chmod 600 {path}")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != SECRET_VERSION_KEY_BYTES:
        raise InputError(f"secret version key {path}: expected {SECRET_VERSION_KEY_BYTES * 2} hex digits; restore "
                         f"the fleet's key from another controller (a new key would rename every secret)")
    return key
