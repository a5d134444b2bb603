"""The laptop deploy's shell commands run for real, locally, on scratch files (no host, no mock): the managed
block keeps every user line, and the conda installer is refused on a checksum mismatch and run on a match."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from archfleet.facts.laptop import BLOCK_SED
from archfleet.tasks.laptop import commands

STANDIN_INSTALLER = Path(__file__).parent / "standins" / "fake-miniforge-installer.sh"
USER_TOP = "# mine\nalias ll='ls -l'\n"
USER_BOTTOM = 'export PATH="$HOME/bin:$PATH"\n'


def run(command: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, check=False)  # type: ignore[attr-defined]


def block_as_the_fact_reads_it(path: Path) -> str:
    """What LaptopState hashes: the lines from the begin marker to the end marker."""
    return subprocess.run(["sed", "-n", BLOCK_SED, str(path)],
                          capture_output=True, text=True, check=True).stdout


def test_block_is_appended_after_the_users_lines_and_read_back_as_written(tmp_path: Path) -> None:
    zshrc = tmp_path / ".zshrc"
    zshrc.write_text(USER_TOP)
    block = commands.managed_block(['export ZSH="$HOME/.oh-my-zsh"', "ZSH_THEME='agnoster'", "plugins=(git docker)"])
    assert run(commands.replace_block(str(zshrc), block)).returncode == 0
    assert zshrc.read_text() == USER_TOP + block
    assert block_as_the_fact_reads_it(zshrc) == block
    assert run(commands.replace_block(str(zshrc), block)).returncode == 0
    assert zshrc.read_text() == USER_TOP + block, "a second run changes nothing"


def test_an_old_block_is_replaced_in_place_and_user_lines_around_it_stay(tmp_path: Path) -> None:
    zshrc = tmp_path / ".zshrc"
    zshrc.write_text(USER_TOP + commands.managed_block(["ZSH_THEME=old"]) + USER_BOTTOM)
    block = commands.managed_block(["ZSH_THEME=new", "echo \"it's $USER\""])
    assert run(commands.replace_block(str(zshrc), block)).returncode == 0
    assert zshrc.read_text() == USER_TOP + block + USER_BOTTOM


def test_missing_file_is_created_with_the_block(tmp_path: Path) -> None:
    zprofile = tmp_path / ".zprofile"
    block = commands.managed_block(['eval "$(/opt/homebrew/bin/brew shellenv)"'])
    assert run(commands.replace_block(str(zprofile), block)).returncode == 0
    assert zprofile.read_text() == block


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_conda_installer_refused_on_checksum_mismatch_and_run_on_match(tmp_path: Path) -> None:
    url = STANDIN_INSTALLER.as_uri()
    good = hashlib.sha256(STANDIN_INSTALLER.read_bytes()).hexdigest()
    prefix = tmp_path / "conda"
    refused = run(commands.install_conda(url, "0" * 64, str(prefix)))
    assert refused.returncode == 1
    assert f"refusing the conda installer {url}: its sha256 is {good}, the profile expects {'0' * 64}" in refused.stderr
    assert not prefix.exists()
    installed = run(commands.install_conda(url, good, str(prefix)))
    assert installed.returncode == 0, installed.stderr
    version = subprocess.run([str(prefix / "bin" / "conda"), "--version"], capture_output=True, text=True, check=True)
    assert "stand-in" in version.stdout
