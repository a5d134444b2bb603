"""Where the lab keeps its files, and the record of what is running (``lab.json``, root-only)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from archfleet.errors import InputError

ARCHES = ("amd64", "arm64")
# Kinds of lab host -> their architecture. Each kind is also a pyinfra inventory group.
#   amd64, arm64: fleet servers; workstation: a bare Debian for the laptop profile; spot: a host playing
#   a spot instance (with a metadata endpoint of the test's own); cloud: a host as Debian's cloud images are (root
#   cannot log in; `admin` logs in and has passwordless sudo).
HOST_KINDS = {"amd64": "amd64", "arm64": "arm64", "workstation": "amd64", "spot": "amd64", "cloud": "amd64"}
DEFAULT_COUNTS = {"amd64": 1, "arm64": 1, "workstation": 0, "spot": 0, "cloud": 0}
CLOUD_USER = "admin"  # the user a cloud-kind host logs in (Debian's cloud images call it admin)


def state_dir() -> Path:
    """Secrets and runtime state: CA, registry password, SSH key, lab.json. Mode 0700."""
    return Path(os.environ.get("ARCHFLEET_LAB_DIR", "/var/lib/archfleet/lab"))


def cache_dir() -> Path:
    """Slow things built once, kept across `lab down`: rootfs tarballs, the registry's built images, the hosts'
    package cache."""
    return Path(os.environ.get("ARCHFLEET_CACHE_DIR", "/var/cache/archfleet"))


@dataclass(frozen=True)
class LabPaths:
    root: Path

    @property
    def lab_json(self) -> Path:
        return self.root / "lab.json"

    @property
    def ca_cert(self) -> Path:
        return self.root / "pki" / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "pki" / "ca.key"

    @property
    def registry_cert(self) -> Path:
        return self.root / "pki" / "registry.crt"

    @property
    def registry_key(self) -> Path:
        return self.root / "pki" / "registry.key"

    @property
    def registry_password(self) -> Path:
        return self.root / "registry" / "password"

    @property
    def htpasswd(self) -> Path:
        return self.root / "registry" / "htpasswd"

    @property
    def registry_config(self) -> Path:
        return self.root / "registry" / "config.yml"

    @property
    def registry_data(self) -> Path:
        """The registry's storage: in the cache folder, as it outlives `lab down` (archfleet/lab/image_cache.py); one
        per lab folder (a benchmark's lab beside the main one has its own)."""
        return cache_dir() / "registry" / self.root.name

    @property
    def apt_cache_files(self) -> Path:
        """The hosts' cached packages (archfleet/lab/apt_cache.py), kept across `lab down`; one per lab folder."""
        return cache_dir() / "apt-cacher-ng" / self.root.name

    @property
    def apt_cache_dir(self) -> Path:
        """The package cache's config, process and log (its cached files are in the cache folder)."""
        return self.root / "apt-cache"

    @property
    def apt_host_setting(self) -> Path:
        """The apt setting every lab host mounts (not ``*.conf``: apt-cacher-ng reads those in its folder)."""
        return self.apt_cache_dir / "host-apt-setting"

    @property
    def registry_pid(self) -> Path:
        return self.root / "registry" / "registry.pid"

    @property
    def registry_log(self) -> Path:
        return self.root / "registry" / "registry.log"

    @property
    def ssh_key(self) -> Path:
        return self.root / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "ssh" / "known_hosts"

    @property
    def authorized_keys(self) -> Path:
        return self.root / "ssh" / "authorized_keys"


@dataclass
class LabHost:
    name: str
    arch: str
    address: str
    container: str
    kind: str = ""

    def __post_init__(self) -> None:
        self.kind = self.kind or self.arch

    def login_user(self, default: str) -> str:
        """Who logs in over SSH: ``admin`` (with sudo) on a cloud-kind host, else ``default`` (the lab's root)."""
        return CLOUD_USER if self.kind == "cloud" else default


@dataclass
class RegistryInfo:
    address: str
    username: str
    password_file: str
    ca_cert: str


@dataclass
class LabState:
    network: str
    subnet: str
    gateway: str
    registry: RegistryInfo
    ssh_user: str
    ssh_key: str
    known_hosts: str
    counts: dict[str, int]
    hosts: list[LabHost] = field(default_factory=list)

    def hosts_of(self, kind: str) -> list[LabHost]:
        """The hosts of one kind (``amd64``, ``arm64``, ``workstation``, ``spot``)."""
        return [h for h in self.hosts if h.kind == kind]

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise InputError(f"lab: no host named {name!r} (hosts: {', '.join(h.name for h in self.hosts)})")

    def registry_password(self) -> str:
        return Path(self.registry.password_file).read_text().strip()


def write_private(path: Path, text: str) -> None:
    """Write a file only root can read, creating its directory 0700."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def save(state: LabState, paths: LabPaths) -> None:
    write_private(paths.lab_json, json.dumps(asdict(state), indent=2) + "\n")


def load(paths: LabPaths | None = None) -> LabState:
    """The running lab's record. Raises InputError when the lab is not up."""
    paths = paths or LabPaths(state_dir())
    try:
        raw = json.loads(paths.lab_json.read_text())
    except FileNotFoundError:
        raise InputError(f"{paths.lab_json}: the lab is not up (run `archfleet lab up`)") from None
    except PermissionError:
        raise InputError(f"{paths.lab_json}: not readable (the lab's files are root-only)") from None
    return LabState(
        network=raw["network"],
        subnet=raw["subnet"],
        gateway=raw["gateway"],
        registry=RegistryInfo(**raw["registry"]),
        ssh_user=raw["ssh_user"],
        ssh_key=raw["ssh_key"],
        known_hosts=raw["known_hosts"],
        counts=raw["counts"],
        hosts=[LabHost(**h) for h in raw["hosts"]],
    )
