"""The command line's contract: exit codes and one-line errors, and reading inventories without connecting."""

from __future__ import annotations

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
