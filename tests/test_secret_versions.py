"""Secret version names (archfleet/services/desired.py file_version) and the fleet's secret version key they are
keyed with (archfleet/credentials.py secret_version_key): stable for the same inputs and key, no function of the
value alone (a plain sha256 prefix of a secret is nowhere in the container's argv), and a key that is missing,
readable by others or malformed is generated once, refused or named, never silently replaced."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

import pytest

from archfleet.credentials import SECRET_VERSION_KEY_ENV, secret_version_key, secret_version_key_path
from archfleet.errors import InputError
from archfleet.fleet import load_fleet
from archfleet.services.desired import desired_container, file_version, fleet_context

SECRET = "hunter2"  # a weak secret: a plain hash of it would be found by a dictionary in a moment
FLEET = """\
registry: {address: "r.example:5000"}
inventory: inventory.py
services:
  web:
    image: r.example:5000/web:1
    groups: [all]
    secrets:
      token: {file: token}
      owned: {file: token, owner: "1000:1000", mode: "0400"}
"""


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "secret-version-key"
    monkeypatch.setenv(SECRET_VERSION_KEY_ENV, str(path))
    return path


def fleet_files(tmp_path: Path) -> list[str]:
    (tmp_path / "fleet.yaml").write_text(FLEET)
    (tmp_path / "inventory.py").write_text("hosts = ['a']\n")
    token = tmp_path / "token"
    if not token.exists():
        token.write_text(SECRET + "\n")
        token.chmod(0o600)
    fleet = load_fleet(tmp_path / "fleet.yaml")
    desired = desired_container(fleet.services["web"], tag="r.example:5000/web:1", repository="r.example:5000/web",
                                digest="sha256:" + "a" * 64, host_name="a", platform="linux/amd64",
                                context=fleet_context(fleet))
    return [*desired.create_args, json.dumps([f.host_path for f in desired.files])]


def old_names(value: str) -> list[str]:
    """The version names before the key: sha256 of the value, and of `digest owner mode` for an owned mount."""
    digest = hashlib.sha256(value.encode()).hexdigest()
    return [digest[:16], hashlib.sha256(f"{digest} 1000:1000 0400".encode()).hexdigest()[:16]]


def test_a_version_is_an_hmac_of_the_file_under_the_fleet_key() -> None:
    key = bytes(32)
    name = file_version(key, "web", "token", SECRET.encode(), "0:0", "0600")
    expected = hmac.new(key, b'["web", "token", "0:0", "0600"]\0' + SECRET.encode(), hashlib.sha256).hexdigest()
    assert name == expected[:16]
    assert name == file_version(key, "web", "token", SECRET.encode(), "0:0", "0600")  # stable
    others = {file_version(bytes([1]) * 32, "web", "token", SECRET.encode(), "0:0", "0600"),  # another key
              file_version(key, "api", "token", SECRET.encode(), "0:0", "0600"),  # another service
              file_version(key, "web", "other", SECRET.encode(), "0:0", "0600"),  # another file
              file_version(key, "web", "token", SECRET.encode(), "1000:1000", "0400"),  # another owner
              file_version(key, "web", "token", b"hunter3", "0:0", "0600")}  # another value
    assert name not in others and len(others) == 5
    with pytest.raises(ValueError, match="needs the fleet's secret version key"):
        file_version(b"", "web", "token", SECRET.encode(), "0:0", "0600")


def test_the_container_argv_holds_no_plain_hash_of_a_secret_and_is_stable(
        tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = fleet_files(tmp_path)
    said = capsys.readouterr().err
    assert f"generated the secret version key {key_file} (0600)" in said and SECRET_VERSION_KEY_ENV in said
    text = " ".join(first)
    assert "/etc/archfleet/services/web/" in text
    assert not [name for name in old_names(SECRET) if name in text], text
    assert hashlib.sha256(SECRET.encode()).hexdigest() not in text
    assert fleet_files(tmp_path) == first  # the next sync names the same versions
    assert capsys.readouterr().err == ""  # generated once


def test_the_key_is_generated_once_0600_in_a_0700_folder(key_file: Path) -> None:
    key = secret_version_key()
    assert len(key) == 32 and secret_version_key_path() == key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert key_file.read_text() == key.hex() + "\n"
    assert secret_version_key() == key
    assert sorted(os.listdir(key_file.parent)) == [key_file.name]  # nothing left aside


def test_the_default_key_is_beside_the_generated_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(SECRET_VERSION_KEY_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert secret_version_key_path() == tmp_path / "archfleet" / "secret-version-key"


def test_a_key_readable_by_others_is_refused_not_replaced(key_file: Path) -> None:
    key = secret_version_key()
    key_file.chmod(0o644)
    with pytest.raises(InputError, match=r"readable by others \(mode 0644\): chmod 600"):
        secret_version_key()
    assert key_file.read_text() == key.hex() + "\n"


@pytest.mark.parametrize("text", ["", "not hex\n", "ab" * 16 + "\n"])
def test_a_malformed_key_is_refused_not_replaced(key_file: Path, text: str) -> None:
    key_file.parent.mkdir(mode=0o700)
    key_file.write_text(text)
    key_file.chmod(0o600)
    with pytest.raises(InputError, match="expected 64 hex digits; restore the fleet's key"):
        secret_version_key()
    assert key_file.read_text() == text
