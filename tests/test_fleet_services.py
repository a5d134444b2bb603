"""The services section of the fleet file: every error names the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from archfleet.cli import main
from archfleet.fleet import load_fleet
from archfleet.fleet.services import check_placement
from archfleet.schema import SchemaError

GOOD = """\
registry: {address: "registry.example.com:5000"}
services:
  web:
    image: registry.example.com:5000/web:1
    groups: [amd64]
    ports: [8080]
    environment: {MODE: production, WORKERS: 4, DEBUG: false}
"""


def write(tmp_path: Path, text: str) -> Path:
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
    assert web.network == "host" and web.restart == "unless-stopped" and web.container_name == "archfleet-web"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("    ports: [8080]\n", "    portz: [8080]\n"), "fleet.yaml:6: services.web.portz: unknown key"),
        (("    groups: [amd64]\n", "    groups: {a: 1}\n"),
         "fleet.yaml:5: services.web.groups: expected a list of strings"),
        (("    ports: [8080]\n", "    ports: [http]\n"), "fleet.yaml:6: services.web.ports[0]: expected a port"),
        (("image: registry.example.com:5000/web:1", "image: nginx"), "fleet.yaml:4: services.web.image: 'nginx' is"),
        (("    ports: [8080]\n", "    network: overlay\n"), "fleet.yaml:6: services.web.network: expected one of"),
        (("  web:\n", "  Web Server:\n"), "fleet.yaml:3: services.Web Server: a service name is"),
        (("services:\n", "servicez:\n"), "fleet.yaml:2: servicez: unknown key"),
        (("    ports: [8080]\n", "    ports: [8080]\n    secrets: {token: {file: a, env: B}}\n"),
         "fleet.yaml:7: services.web.secrets.token: a secret comes from exactly one of"),
        (("    ports: [8080]\n", "    ports: [8080]\n    files: [{template: missing.j2, mount: /x}]\n"),
         "fleet.yaml:7: services.web.files[0]: template"),
    ],
)
def test_bad_input_names_file_line_and_key(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    message = error_of(tmp_path, text)
    assert message.startswith(str(tmp_path)) and expected in message, message


def test_unknown_group_and_port_used_twice_on_a_host(tmp_path: Path) -> None:
    fleet = load_fleet(write(tmp_path, GOOD + """\
  api:
    image: registry.example.com:5000/api:1
    hosts: [amd64-1]
    ports: ["8080/tcp"]
""")
    )
    used_twice = r"fleet.yaml:11: services.api.ports\[0\]: port 8080/tcp on amd64-1 is used by"
    with pytest.raises(SchemaError, match=used_twice):
        check_placement(fleet.services, {"amd64": ["amd64-1", "amd64-2"], "all": ["amd64-1", "amd64-2"]})
    placement = check_placement(fleet.services, {"amd64": ["amd64-2"], "arm64": ["amd64-1"]})
    assert [s.name for s in placement["amd64-1"]] == ["api"]
    with pytest.raises(SchemaError, match=r"fleet.yaml:5: services.web.groups: no inventory group 'amd64'"):
        check_placement(fleet.services, {"arm64": ["amd64-1"]})


def test_cli_exits_2_with_one_line_and_touches_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD.replace("    ports: [8080]\n", "    ports: 8080\n"))
    assert main(["sync", "--dry", "-f", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fleet.yaml:6: services.web.ports: expected a list" in err[0]
