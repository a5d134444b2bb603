"""The laptop profile: every key from deploys/laptop_defaults.yaml, errors naming file, line and key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from archfleet.errors import InputError
from archfleet.fleet.laptop import RemoteNode, default_profile, load_defaults, load_profile, parse_profile
from archfleet.schema import Mapping, parse_yaml

PROJECT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "laptop.yaml"
    path.write_text(text)
    return path


def test_defaults_file_is_the_profile_of_an_empty_file(tmp_path: Path) -> None:
    assert load_profile(write(tmp_path, "")).values == default_profile().values == load_defaults()


def test_profile_overrides_only_what_it_names(tmp_path: Path) -> None:
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "data.yml").write_text("name: data\n")
    profile = load_profile(write(tmp_path, (
        "homebrew_formulae: [git, jq]\nconda_installer_sha256: {Linux-x86_64: abc}\n"
        "conda_environments: {data: envs/data.yml}\n"
        "docker_buildx_remote_nodes:\n  - {host: x86-box, platform: linux/amd64}\n"
        "  - {name: big, endpoint: 'ssh://me@10.0.0.5', platform: linux/amd64}\n")))
    assert profile["homebrew_formulae"] == ["git", "jq"]
    assert profile["ohmyzsh_theme"] == load_defaults()["ohmyzsh_theme"]
    # per platform: the file's entry replaces that platform's default, the other defaults stay
    assert profile["conda_installer_sha256"] == {**load_defaults()["conda_installer_sha256"], "Linux-x86_64": "abc"}
    assert profile.conda_environments == {"data": (tmp_path / "envs" / "data.yml").resolve()}
    assert profile.remote_nodes == [RemoteNode("x86-box", "linux/amd64", host="x86-box"),
                                    RemoteNode("big", "linux/amd64", endpoint="ssh://me@10.0.0.5")]


@pytest.mark.parametrize(("text", "message"), [
    ("homebrew_formula: [git]\n", "laptop.yaml:1: homebrew_formula: unknown key"),
    ("zsh_login_shell: yes please\n", "laptop.yaml:1: zsh_login_shell: expected true or false"),
    ("homebrew_casks: {a: b}\n", "laptop.yaml:1: homebrew_casks: expected a list of strings"),
    ("docker_runtime: podman\n", "laptop.yaml:1: docker_runtime: expected one of desktop, colima, got 'podman'"),
    ("conda_environments: {data: nope.yml}\n", "laptop.yaml:1: conda_environments.data: environment file"),
    ("docker_buildx_remote_nodes:\n  - {platform: linux/amd64}\n",
     "laptop.yaml:2: docker_buildx_remote_nodes[0]: give either host"),
    ("docker_buildx_remote_nodes:\n  - {name: x, endpoint: 'tcp://h:1', platform: linux/amd64}\n",
     "laptop.yaml:2: docker_buildx_remote_nodes[0].endpoint: expected ssh://user@address"),
])
def test_bad_profiles_name_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        load_profile(write(tmp_path, text))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_fleet_files_laptop_example_parses(tmp_path: Path) -> None:
    text = (PROJECT / "fleet.yaml").read_text()
    example = re.search(r"^# laptop:\n(.*?)^# \(end of the laptop example\)", text, re.S | re.M)
    assert example, "fleet.yaml has no laptop example"
    body = "\n".join(line[2:] for line in example.group(1).splitlines())
    section = Mapping(parse_yaml(body, "fleet.yaml"))
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "data.yml").write_text("name: data\n")
    profile = parse_profile(section, tmp_path)
    assert profile["docker_runtime"] == "colima"
    assert profile.remote_nodes == [RemoteNode("amd64-1", "linux/amd64", host="amd64-1")]


def test_archfleet_laptop_rejects_a_bad_profile_with_exit_2_before_touching_anything(tmp_path: Path) -> None:
    bad = write(tmp_path, "ohmyzsh_plugin: [git]\n")
    result = subprocess.run([str(Path(sys.executable).parent / "archfleet"), "laptop", "--dry", "--profile", str(bad)],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"archfleet: error: {bad}:1: ohmyzsh_plugin: unknown key (did you mean 'ohmyzsh_plugins'?)")


def test_archfleet_laptop_checks_the_fleet_files_laptop_section_first(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("registry: {lab: true}\nlaptop:\n  ohmyzsh_theme: agnoster\n  conda_prefx: ~/conda\n")
    result = subprocess.run([str(Path(sys.executable).parent / "archfleet"), "laptop", "--dry"],
                            capture_output=True, text=True, check=False, timeout=60,
                            env={**os.environ, "ARCHFLEET_FLEET": str(fleet)})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"archfleet: error: {fleet}:4: laptop.conda_prefx: unknown key (did you mean 'conda_prefix'?)")
