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
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where the proxy's id file goes (the first sync writes it)
    assert main(["init", str(tmp_path), "--hosts", "a=127.0.0.1,b=127.0.0.2", "--registry", "reg.example:5000",
                 "--user", "admin"]) == 0
    from archfleet.fleet import load_fleet

    fleet = load_fleet(tmp_path / "fleet.yaml")
    assert fleet.placement is not None
    assert sorted(fleet.placement.hosts_of("v2ray")) == ["a", "b"]
    assert (tmp_path / "images" / "v2ray" / "Dockerfile").is_file()
    assert (tmp_path / "templates" / "v2ray" / "config.json.j2").is_file()
    secret = tmp_path / "home" / ".config" / "archfleet" / "v2ray-vmess-id"
    assert not secret.exists() and fleet.services["v2ray"].secrets[0].to_be_generated  # the load never writes


def test_the_registry_login_and_namespace_are_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    token = tmp_path / "ghcr-token"
    token.write_text("ghp_not_a_real_token\n")
    token.chmod(0o600)
    assert main(["init", str(tmp_path / "fleet"), "--hosts", "a=127.0.0.1", "--registry", "ghcr.io",
                 "--namespace", "acme", "--registry-user", "acme-bot", "--password-file", str(token)]) == 0
    text = (tmp_path / "fleet" / "fleet.yaml").read_text()
    assert "ghp_not_a_real_token" not in text
    from archfleet.fleet import load_fleet

    fleet = load_fleet(tmp_path / "fleet" / "fleet.yaml")
    assert (fleet.registry.address, fleet.registry.username) == ("ghcr.io", "acme-bot")
    assert fleet.registry.password() == "ghp_not_a_real_token"
    assert fleet.images["v2ray"].ref("ghcr.io") == "ghcr.io/acme/v2ray:4.34"


@pytest.mark.parametrize(("extra", "says"), [
    ([], "--namespace names your user or organisation"),  # ghcr.io is shared: no silent archfleet/v2ray there
    (["--namespace", "acme", "--registry-user", "bot"], "--registry-user and --password-file go together"),
    (["--namespace", "acme", "--registry-user", "bot", "--password-file", "/nonexistent/token"], "no such file"),
    (["--namespace", "Acme Corp"], "is not a repository path"),
])
def test_a_registry_login_that_would_fail_later_is_refused_now(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               extra: list[str], says: str) -> None:
    assert main(["init", str(tmp_path / "fleet"), "--hosts", "a=127.0.0.1", "--registry", "ghcr.io", *extra]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "fleet").exists()


def test_a_private_registry_defaults_to_the_archfleet_namespace(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert main(["init", str(tmp_path), "--hosts", "a=127.0.0.1", "--registry", "reg.example:5000"]) == 0
    assert "repository: archfleet/v2ray" in (tmp_path / "fleet.yaml").read_text()
    assert "# username: archfleet" in (tmp_path / "fleet.yaml").read_text()


def test_init_lab_prints_the_whole_lab_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The `next:` line is the README's lab path (day two, bug 4): hosts bootstrap and images build before sync."""
    assert main(["init", "--lab", str(tmp_path)]) == 0
    next_line = [line for line in capsys.readouterr().out.splitlines() if line.startswith("next: ")]
    assert next_line == [f"next: archfleet lab up && cd {tmp_path} && archfleet hosts bootstrap && "
                         "archfleet images build && archfleet sync && archfleet verify"], next_line
