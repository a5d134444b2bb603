"""The ``registry`` section: where images are published and pulled from, and how to log in.

The section is required: ``registry: {lab: true}`` says "the local lab's registry" explicitly, and a file without
it is an error rather than a silent aim at the lab. Files it names are checked at load time: the CA file exists
and holds a PEM certificate; the password file exists and is not readable by every user (chmod 600).
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path

from archfleet.errors import InputError
from archfleet.schema import Mapping, Node

ADDRESS_PATTERN = re.compile(r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                             r"(?::(?P<port>\d{1,5}))?$")
USERNAME_PATTERN = re.compile(r"^[^\s:]{1,256}$")
PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
LAB_HINT = "for the local lab write registry: {lab: true}"


@dataclass(frozen=True)
class RegistrySpec:
    address: str | None = None  # host:port
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    lab: bool = False  # the local lab's registry: the fields above come from the lab's record

    def resolve(self) -> RegistrySpec:
        """The concrete registry (for ``lab: true``, read from the running lab's record)."""
        return lab_registry() if self.lab else self

    def password(self) -> str | None:
        """The password, read when needed (never kept in the fleet file)."""
        if self.password_file is None:
            return None
        try:
            return self.password_file.read_text().strip()
        except OSError as error:
            raise InputError(f"{self.password_file}: cannot read the registry password: {error.strerror}") from None


def lab_registry() -> RegistrySpec:
    from archfleet.lab.state import load

    state = load()
    return RegistrySpec(
        address=state.registry.address,
        username=state.registry.username,
        password_file=Path(state.registry.password_file),
        ca_file=Path(state.registry.ca_cert),
    )


def check_private_file(node: Node, path: Path, what: str) -> None:
    """``path`` is a readable regular file that not every user can read (errors name ``node``'s line)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        node.fail(f"{what} {path} does not exist")
    except OSError as error:
        node.fail(f"{what} {path}: {error.strerror}")
    if not stat.S_ISREG(info.st_mode):
        node.fail(f"{what} {path} is not a file")
    if info.st_mode & stat.S_IROTH:
        node.fail(f"{what} {path} is readable by every user (mode {stat.S_IMODE(info.st_mode):04o}): "
                  f"chmod 600 {path}")


def _ca_file(node: Node, path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(65536)
    except FileNotFoundError:
        node.fail(f"CA file {path} does not exist")
    except IsADirectoryError:
        node.fail(f"CA file {path} is not a file")
    except OSError as error:
        node.fail(f"CA file {path}: {error.strerror}")
    if PEM_CERTIFICATE not in head:
        node.fail(f"CA file {path} holds no PEM certificate ({PEM_CERTIFICATE.decode()})")


def parse_registry(top: Mapping, base_dir: Path) -> RegistrySpec:
    """The fleet file's ``registry:`` section, read from the file's top-level mapping ``top`` (it is required)."""
    node = top.get("registry")
    if node is None or node.value is None:
        line = node.line if node is not None else 1
        Node(None, line, "registry", top.node.file).fail(f"missing required section ({LAB_HINT})")
    section = Mapping(node)
    if section.boolean("lab", False):
        for key, other in section.items.items():
            if key != "lab":
                other.fail("with lab: true the registry comes from the lab's record: remove this key "
                           "(or write lab: false)")
        return RegistrySpec(lab=True)
    address_node = section.items.get("address")
    address = section.string("address")
    match = ADDRESS_PATTERN.fullmatch(address)
    assert address_node is not None
    if "://" in address:
        address_node.fail(f"{address!r}: write host[:port] without the scheme (TLS is always used)")
    if not match:
        address_node.fail(f"{address!r} is not host[:port]")
    if match["port"] and not 1 <= int(match["port"]) <= 65535:
        address_node.fail(f"port {match['port']} is out of range")
    username = section.string("username", None)
    if username is not None and not USERNAME_PATTERN.fullmatch(username):
        section.fail("username", "a user name has no spaces or ':'")
    password_text = section.string("password_file", None)
    ca_text = section.string("ca_file", None)
    section.done()
    if (username is None) != (password_text is None):
        (section.items.get("username") or section.items["password_file"]).fail(
            "username and password_file go together (both, or neither for a registry without login)")

    def resolve(value: str | None) -> Path | None:
        return (base_dir / Path(value).expanduser()) if value else None

    password_file, ca_file = resolve(password_text), resolve(ca_text)
    if password_file is not None:
        check_private_file(section.items["password_file"], password_file, "password file")
    if ca_file is not None:
        _ca_file(section.items["ca_file"], ca_file)
    return RegistrySpec(address, username, password_file, ca_file)
