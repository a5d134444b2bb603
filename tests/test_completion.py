"""`archfleet completion bash|zsh|fish`: the scripts come from the parser, load in real shells and complete."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from archfleet.cli import main


def script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def zsh() -> str:
    """zsh from Debian's packages when the machine has none (the test says why it skips if that fails)."""
    found = shutil.which("zsh")
    if found is None and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "zsh"], capture_output=True, timeout=600, check=False)
        found = shutil.which("zsh")
    if found is None:
        pytest.skip("zsh is not installed and `apt-get install zsh` did not install it")
    return found


def bash_completes(text: str, words: list[str], tmp_path: Path) -> list[str]:
    """What bash offers for the last of ``words`` (the line typed so far), with the script loaded."""
    (tmp_path / "completion.bash").write_text(text)
    line = " ".join(f"'{word}'" for word in words)
    run = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c",
         f"source {tmp_path / 'completion.bash'} && COMP_WORDS=({line}) && COMP_CWORD={len(words) - 1} && "
         "_archfleet && printf '%s\\n' \"${COMPREPLY[@]}\""],
        capture_output=True, text=True, cwd=tmp_path, check=False)
    assert run.returncode == 0 and not run.stderr, run.stderr
    return [word for word in run.stdout.splitlines() if word]


def test_bash_completes_commands_subcommands_options_and_files(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    text = script("bash", capsys)
    assert bash_completes(text, ["archfleet", ""], tmp_path)[:6] == ["init", "check", "hosts", "images", "sync",
                                                                      "verify"]
    assert bash_completes(text, ["archfleet", "im"], tmp_path) == ["images"]
    assert bash_completes(text, ["archfleet", "images", ""], tmp_path)[:2] == ["build", "verify"]
    assert "--limit" in bash_completes(text, ["archfleet", "hosts", "bootstrap", "--"], tmp_path)
    assert bash_completes(text, ["archfleet", "completion", "z"], tmp_path) == ["zsh"]
    (tmp_path / "my-fleet.yaml").write_text("")
    assert bash_completes(text, ["archfleet", "sync", "-f", "my-"], tmp_path) == ["my-fleet.yaml"]


def test_zsh_loads_the_script_and_registers_it(zsh: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "_archfleet").write_text(script("zsh", capsys))
    run = subprocess.run(
        [zsh, "-f", "-c", "autoload -Uz compinit && compinit -u -d " + str(tmp_path / "zcompdump") +
         f" && source {tmp_path / '_archfleet'} && print -r -- $_comps[archfleet] && "
         "_archfleet_words 'images build' && _archfleet_file_options sync"],
        capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    registered, words, files = run.stdout.splitlines()
    assert registered == "_archfleet"
    assert "--dry" in words.split() and "--fleet" in words.split()
    assert files.split() == ["-f", "--fleet"]


def test_fish_script_has_a_line_per_command(capsys: pytest.CaptureFixture[str]) -> None:
    text = script("fish", capsys)
    assert "complete -c archfleet -n '__fish_use_subcommand' -a init" in text
    assert "-a build" in text and "-l limit" in text


def test_an_unknown_shell_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "tcsh"]) == 2
    assert "invalid choice: 'tcsh'" in capsys.readouterr().err
