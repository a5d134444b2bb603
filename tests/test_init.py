"""`archfleet init`: host specs, refusals, and what it writes (no host is contacted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from archfleet.cli import main
from archfleet.commands.init import HostSpec, parse_hosts


def test_host_specs_take_name_user_address_and_port() -> None:
    assert parse_hosts("web-1=10.0.0.5, admin@10.0.0.6:2222,ops=root@[fd00::7]:22") == [
        HostSpec("web-1", "10.0.0.5"),
        HostSpec("10.0.0.6", "10.0.0.6", "admin", 2222),
        HostSpec("ops", "fd00::7", "root", 22),
    ]


@pytest.mark.parametrize("text", ["", "a,,b", "web 1=10.0.0.1", "x=10.0.0.1:99999", "a=1.2.3.4,a=1.2.3.5", "@host"])
def test_bad_host_specs_are_refused(text: str) -> None:
    with pytest.raises(Exception, match="init: --hosts"):
        parse_hosts(text)


def test_nothing_is_written_over_an_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "fleet.yaml").write_text("mine\n")
    code = main(["init", str(tmp_path), "--hosts", "127.0.0.1", "--registry", "registry.example.com"])
    assert code == 2
    assert "fleet.yaml exists" in capsys.readouterr().err
    assert (tmp_path / "fleet.yaml").read_text() == "mine\n"
    assert not (tmp_path / "inventories").exists()


def test_hosts_need_a_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path), "--hosts", "127.0.0.1"]) == 2
    assert "--registry" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_written_fleet_loads_and_places_v2ray_on_every_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the load generates the proxy's id file there
    assert main(["init", str(tmp_path), "--hosts", "a=127.0.0.1,b=127.0.0.2", "--registry", "reg.example:5000",
                 "--user", "admin"]) == 0
    from archfleet.fleet import load_fleet

    fleet = load_fleet(tmp_path / "fleet.yaml")
    assert fleet.placement is not None
    assert sorted(fleet.placement.hosts_of("v2ray")) == ["a", "b"]
    assert (tmp_path / "images" / "v2ray" / "Dockerfile").is_file()
    assert (tmp_path / "templates" / "v2ray" / "config.json.j2").is_file()
    secret = tmp_path / "home" / ".config" / "archfleet" / "v2ray-vmess-id"
    assert secret.stat().st_mode & 0o077 == 0
