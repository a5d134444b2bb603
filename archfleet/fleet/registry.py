"""The ``registry`` section: where images are published and pulled from, and how to log in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from archfleet.errors import InputError
from archfleet.schema import Mapping


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


def parse_registry(section: Mapping | None, base_dir: Path) -> RegistrySpec:
    """``registry: {lab: true}`` (the default) means the local lab's registry, resolved when first used."""
    if section is None:
        return RegistrySpec(lab=True)
    if section.boolean("lab", False):
        section.done()
        return RegistrySpec(lab=True)
    address = section.string("address")
    username = section.string("username", None)
    password_file = section.string("password_file", None)
    ca_file = section.string("ca_file", None)
    section.done()

    def resolve(value: str | None) -> Path | None:
        return (base_dir / Path(value).expanduser()) if value else None

    return RegistrySpec(address, username, resolve(password_file), resolve(ca_file))
