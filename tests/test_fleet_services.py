"""The services section of the fleet file: every error names the file, the line and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archfleet.cli import main
from archfleet.fleet import load_fleet
from archfleet.schema import SchemaError

INVENTORY = """\
amd64 = [("amd64-1", {"ssh_hostname": "127.0.0.1"}), ("amd64-2", {"ssh_hostname": "127.0.0.1"})]
"""

GOOD = """\
registry: {address: "registry.example.com:5000"}
inventory: inventory.py
services:
  web:
    image: registry.example.com:5000/web:1
    groups: [amd64]
    ports: [8080]
    environment: {MODE: production, WORKERS: 4, DEBUG: false}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "inventory.py").write_text(INVENTORY)
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(SchemaError) as caught:
        load_fleet(write(tmp_path, text))
    return str(caught.value)


def test_a_good_service_loads_with_typed_values(tmp_path: Path) -> None:
    fleet = load_fleet(write(tmp_path, GOOD))
    web = fleet.services["web"]
    assert web.groups == ["amd64"]
    assert [str(p) for p in web.ports] == ["8080:8080/tcp"]
    assert web.environment == {"MODE": "production", "WORKERS": "4", "DEBUG": "false"}
    assert web.network == "host" and web.restart == "unless-stopped"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("    ports: [8080]\n", "    portz: [8080]\n"), "fleet.yaml:7: services.web.portz: unknown key"),
        (("    groups: [amd64]\n", "    groups: {a: 1}\n"),
         "fleet.yaml:6: services.web.groups: expected a list of strings"),
        (("    ports: [8080]\n", "    ports: [http]\n"), "fleet.yaml:7: services.web.ports[0]: expected a port"),
        (("image: registry.example.com:5000/web:1", "image: nginx"), "fleet.yaml:5: services.web.image: 'nginx' is"),
        (("    ports: [8080]\n", "    network: overlay\n"), "fleet.yaml:7: services.web.network: expected one of"),
        (("  web:\n", "  Web Server:\n"), "fleet.yaml:4: services.Web Server: a service name is"),
        (("services:\n", "servicez:\n"), "fleet.yaml:3: servicez: unknown key"),
        (("    ports: [8080]\n", "    ports: [8080]\n    secrets: {token: {file: a, env: B}}\n"),
         "fleet.yaml:8: services.web.secrets.token: a secret comes from exactly one of"),
        (("    ports: [8080]\n", "    ports: [8080]\n    files: [{template: missing.j2, mount: /x}]\n"),
         "fleet.yaml:8: services.web.files[0]: template"),
    ],
)
def test_bad_input_names_file_line_and_key(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    message = error_of(tmp_path, text)
    assert message.startswith(str(tmp_path)) and expected in message, message


def test_unknown_group_and_port_used_twice_on_a_host_are_load_errors(tmp_path: Path) -> None:
    api = """\
  api:
    image: registry.example.com:5000/api:1
    hosts: [amd64-1]
    ports: ["8080/tcp"]
"""
    used_twice = r"fleet.yaml:(7: services.web|12: services.api).ports\[0\]: port 8080/tcp on amd64-1 is used by"
    assert re.search(used_twice, error_of(tmp_path, GOOD + api))
    fleet = load_fleet(write(tmp_path, GOOD + api.replace("8080/tcp", "8081/tcp")))
    assert sorted(fleet.services) == ["api", "web"]
    unknown_group = error_of(tmp_path, GOOD.replace("groups: [amd64]", "groups: [arm64]"))
    assert "fleet.yaml:6: services.web.groups: " in unknown_group and "'arm64'" in unknown_group


def test_cli_exits_2_with_one_line_and_touches_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD.replace("    ports: [8080]\n", "    ports: 8080\n"))
    assert main(["sync", "--dry", "-f", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fleet.yaml:7: services.web.ports: expected a list" in err[0]
