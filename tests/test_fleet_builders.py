"""`builders:` in the fleet file: platforms to a host of the inventory or the local engine, checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from archfleet.errors import InputError
from archfleet.fleet import load_fleet
from archfleet.platforms import Platform


def fleet_with(tmp_path: Path, builders: str) -> Path:
    (tmp_path / "hosts.py").write_text("servers = ['amd-1', ('arm-1', {'ssh_hostname': '192.0.2.7'})]\n")
    path = tmp_path / "fleet.yaml"
    path.write_text(f"registry: {{address: registry.example.com}}\ninventory: hosts.py\nbuilders:\n{builders}")
    return path


def test_each_platform_names_a_host_or_the_local_engine(tmp_path: Path) -> None:
    fleet = load_fleet(fleet_with(tmp_path, "  linux/arm64: arm-1\n  linux/amd64: local\n"))
    arm64, amd64 = Platform("linux", "arm64"), Platform("linux", "amd64")
    assert [(str(p), c.builder, c.local) for p, c in fleet.builders.items()] == [
        (str(arm64), "arm-1", False), (str(amd64), "local", True)]


@pytest.mark.parametrize(("builders", "line", "says"), [
    ("  linux/arm64: arm-9\n", 4, "'arm-9' is not a host of hosts.py"),
    ("  linux/sparc: arm-1\n", 4, "is not a platform"),
    ("  linux/arm64: [arm-1]\n", 4, "expected a host of the inventory or 'local'"),
])
def test_a_wrong_builder_is_file_line_and_key(tmp_path: Path, builders: str, line: int, says: str) -> None:
    path = fleet_with(tmp_path, builders)
    with pytest.raises(InputError) as raised:
        load_fleet(path)
    assert str(raised.value).startswith(f"{path}:{line}: builders.linux/")
    assert says in str(raised.value)


def test_builder_hosts_connect_as_the_fleet_file_says(tmp_path: Path) -> None:
    """images build asks the fleet's hosts with the fleet file's ssh: applied (its key, its user), as every other
    command connects: the raw inventory alone has neither."""
    from archfleet.images.plan import candidates_of

    key = tmp_path / "id_ed25519"
    key.write_text("not a real key\n")
    key.chmod(0o600)
    path = fleet_with(tmp_path, "  linux/arm64: arm-1\n")
    path.write_text(path.read_text() + f"ssh:\n  user: admin\n  key_file: {key}\n")
    fleet = load_fleet(path)
    assert fleet.hosts is not None
    (arm,) = [c for c in candidates_of(fleet.hosts) if c.name == "arm-1"]
    builder = arm.builder(Platform("linux", "arm64"))
    assert (builder.hostname, builder.user, builder.key) == ("192.0.2.7", "admin", str(key))
