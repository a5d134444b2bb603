"""The command line's contract: exit codes and one-line errors, and reading inventories without connecting."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from archfleet.cli import main
from archfleet.errors import InputError
from archfleet.inventory_file import group_names, load_inventory


def test_unknown_option_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync", "--frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["archfleet: error: archfleet: unrecognized arguments: --frobnicate"]


def test_unknown_command_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy-everything"]) == 2
    assert "invalid choice: 'deploy-everything'" in capsys.readouterr().err


def test_missing_fleet_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "-f", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err.strip() == f"archfleet: error: {tmp_path / 'nope.yaml'}: no such file"


def test_inventory_groups_as_pyinfra_reads_them(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        "web = ['a', ('b', {'ssh_port': 2222})]\n"
        "db = ['c']\n"
        "_private = ['x']\n"
        "settings = {'not': 'a group'}\n"
    )
    groups = group_names(load_inventory(inventory))
    assert groups == {"web": ["a", "b"], "db": ["c"], "inventory": ["a", "b", "c"], "all": ["a", "b", "c"]}


def test_a_broken_inventory_is_one_line(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.py"
    inventory.write_text("hosts = [undefined_name]\n")
    with pytest.raises(InputError, match=r"inventory.py: the inventory failed to load: NameError"):
        load_inventory(inventory)


# --- one --limit, help order and examples, check (issue 32) ---

def every_parser() -> list[tuple[str, argparse.ArgumentParser]]:
    from archfleet.cli import build_parser
    from archfleet.commands.examples import subcommands

    found: list[tuple[str, argparse.ArgumentParser]] = []
    pending: list[tuple[str, argparse.ArgumentParser]] = [("", build_parser())]
    while pending:
        path, parser = pending.pop(0)
        found.append((path, parser))
        pending.extend((f"{path} {name}".strip(), sub) for name, sub in subcommands(parser).items())
    return found


def test_every_limit_is_the_same_option() -> None:
    from archfleet.commands.limit import LIMIT_METAVAR

    limits = {path: action for path, parser in every_parser() for action in parser._actions
              if "--limit" in action.option_strings}
    assert {"sync", "verify", "hosts bootstrap", "laptop", "service info"} <= set(limits)
    for path, action in limits.items():
        assert isinstance(action, argparse._AppendAction) and action.metavar == LIMIT_METAVAR, path


@pytest.mark.parametrize("argv", [["sync"], ["verify"], ["hosts", "bootstrap"], ["laptop"],
                                  ["service", "info", "v2ray"]])
def test_limit_takes_commas_and_repeats_alike(argv: list[str]) -> None:
    from archfleet.cli import build_parser
    from archfleet.commands.limit import limit_names

    parsed = build_parser(argv).parse_args([*argv, "--limit", "amd64,web-1", "--limit", "arm64", "--limit", "web-1"])
    assert limit_names(parsed.limit) == ["amd64", "web-1", "arm64"]


def test_an_empty_limit_name_is_bad_input() -> None:
    from archfleet.commands.limit import limit_names

    assert limit_names(None) is None
    with pytest.raises(InputError, match="--limit: an empty name"):
        limit_names(["a,,b"])


def test_help_lists_what_a_user_does_first_and_every_command_has_an_example() -> None:
    from archfleet.cli import build_parser

    text = build_parser().format_help()
    order = [line.split()[0] for line in text.split("COMMAND\n", 1)[1].split("\n\n")[0].splitlines()
             if line.startswith("    ") and not line.startswith("     ")]
    assert order[:6] == ["init", "check", "hosts", "images", "sync", "verify"]
    assert order[-2:] == ["lab", "demo"]
    missing = [path or "archfleet" for path, parser in every_parser()
               if not (parser.epilog or "").startswith("example")]
    assert missing == []
    sync_help = dict(every_parser())["sync"].format_help()
    assert "archfleet sync --dry --limit arm64" in sync_help


FLEET_WITH_A_TYPO = """\
registry:
  address: registry.example.com
inventory: hosts.py
services:
  web:
    image: nginx:1.27
    groups: [servers]
    portz: [80]
"""


def test_check_names_file_line_and_key_without_a_lab(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-lab"))  # no lab record anywhere near
    (tmp_path / "hosts.py").write_text("servers = [('web-1', {'ssh_hostname': '192.0.2.10'})]\n")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET_WITH_A_TYPO)
    assert main(["check", "-f", str(fleet)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"archfleet: error: {fleet}:8:") and "portz" in err, err
    assert err.count("\n") == 0

    fleet.write_text(FLEET_WITH_A_TYPO.replace("portz", "ports"))
    assert main(["check", "-f", str(fleet)]) == 0
    out = capsys.readouterr().out
    assert "ok (nothing was contacted)" in out and "web: 1 host(s)" in out


def test_check_refuses_an_inventory_that_reaches_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The guard is real: an inventory that connects (to a listener here) or runs a process fails the check, and
    the listener is never reached."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    (tmp_path / "hosts.py").write_text(
        "import socket\n"
        f"socket.create_connection(('127.0.0.1', {port}), timeout=1).close()\n"
        "servers = ['web-1']\n")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET_WITH_A_TYPO.replace("portz", "ports"))
    assert main(["check", "-f", str(fleet)]) == 2
    err = capsys.readouterr().err
    assert "check is offline" in err and "hosts.py" in err, err
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()

    (tmp_path / "hosts.py").write_text("import subprocess\nsubprocess.run(['true'])\nservers = ['web-1']\n")
    assert main(["check", "-f", str(fleet)]) == 2
    assert "subprocess.Popen" in capsys.readouterr().err
    # outside `check` the same process connects and spawns as before
    import subprocess

    assert subprocess.run(["true"], check=False).returncode == 0


def example_command_lines(text: str) -> list[list[str]]:
    """The ``archfleet ...`` command lines of an example: continuations joined, comments, redirections and other
    commands (``cd``) dropped."""
    import shlex

    lines: list[list[str]] = []
    for line in text.replace("\\\n", " ").splitlines():
        for part in line.split("#", 1)[0].split("&&"):
            words = shlex.split(part.split(">", 1)[0])
            if words[:1] == ["archfleet"]:
                lines.append(words[1:])
    return lines


def test_every_example_is_a_command_line_archfleet_accepts() -> None:
    from archfleet.cli import build_parser
    from archfleet.commands.examples import EXAMPLES

    refused = []
    for name, text in EXAMPLES.items():
        for words in example_command_lines(text):
            try:
                build_parser(words).parse_args(words)
            except InputError as error:
                refused.append(f"{name or 'archfleet'}: {' '.join(words)}: {error}")
    assert refused == []
    assert sum(len(example_command_lines(text)) for text in EXAMPLES.values()) >= len(EXAMPLES)
