"""Which registry the host bootstrap (deploys/host.py) trusts and logs in to first: the host data's (the lab's
inventory), else the fleet file's `registry:` for the hosts the fleet speaks for (EC2 instances have no registry
data), else none."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from archfleet.credentials import host_registry_login
from archfleet.errors import InputError
from archfleet.fleet import Fleet, load_fleet


@pytest.fixture
def registry_files(tmp_path: Path) -> tuple[Path, Path]:
    """A real self-signed CA certificate and a root-only password file."""
    ca, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(ca), "-days", "1", "-subj", "/CN=test CA"],
                   check=True, capture_output=True)
    password = tmp_path / "registry-password"
    password.write_text("fleet-secret\n")
    password.chmod(0o600)
    return ca, password


def fleet_file(tmp_path: Path, inventory: bool = True) -> Fleet:
    (tmp_path / "inventory.py").write_text(
        'servers = [("i-0123456789abcdef0", {"ssh_hostname": "192.0.2.10", "spot": True})]\n')
    path = tmp_path / "fleet.yaml"
    path.write_text("registry: {address: registry.example.com:5000, username: fleet-bot,\n"
                    "           password_file: registry-password, ca_file: ca.crt}\n"
                    + ("inventory: inventory.py\n" if inventory else ""))
    return load_fleet(path)


def test_a_host_without_registry_data_gets_the_fleet_files_registry(tmp_path: Path,
                                                                    registry_files: tuple[Path, Path]) -> None:
    ca, _ = registry_files
    login = host_registry_login({"ssh_hostname": "192.0.2.10", "spot": True}, "i-0123456789abcdef0",
                                fleet_file(tmp_path))
    assert login is not None and login.credentials is not None
    assert (login.registry, login.credentials.username, login.credentials.secret) == (
        "registry.example.com:5000", "fleet-bot", "fleet-secret")
    assert login.ca_file == ca and login.refresh_after is None


def test_the_fleet_file_speaks_only_for_the_hosts_of_its_inventory(tmp_path: Path,
                                                                   registry_files: tuple[Path, Path]) -> None:
    assert host_registry_login({}, "some-other-host", fleet_file(tmp_path)) is None
    assert host_registry_login({}, "i-0123456789abcdef0", None) is None


def test_a_fleet_file_without_inventory_speaks_for_every_host(tmp_path: Path,
                                                              registry_files: tuple[Path, Path]) -> None:
    login = host_registry_login({}, "any-host", fleet_file(tmp_path, inventory=False))
    assert login is not None and login.registry == "registry.example.com:5000"


def test_host_data_wins_over_the_fleet_file(tmp_path: Path, registry_files: tuple[Path, Path]) -> None:
    ca, _ = registry_files
    own_password = tmp_path / "lab-password"
    own_password.write_text("lab-secret\n")
    data = {"registry_address": "172.28.77.1:5000", "registry_username": "archfleet",
            "registry_password_file": str(own_password), "registry_ca_file": str(ca)}
    login = host_registry_login(data, "i-0123456789abcdef0", fleet_file(tmp_path))
    assert login is not None and login.credentials is not None
    assert (login.registry, login.credentials.username, login.credentials.secret) == (
        "172.28.77.1:5000", "archfleet", "lab-secret")
    anonymous = host_registry_login({"registry_address": "172.28.77.1:5000"}, "amd64-1", None)
    assert anonymous is not None and anonymous.credentials is None and anonymous.ca_file is None


def test_an_unreadable_password_file_in_host_data_is_one_line_naming_the_host(tmp_path: Path) -> None:
    data = {"registry_address": "172.28.77.1:5000", "registry_username": "archfleet",
            "registry_password_file": str(tmp_path / "missing")}
    with pytest.raises(InputError) as error:
        host_registry_login(data, "amd64-1", None)
    assert str(error.value).startswith("amd64-1: host data registry_password_file ")
    assert "No such file or directory" in str(error.value) and "\n" not in str(error.value)
