"""Mutation test: the example fleet.yaml with seeded random deletions, duplications, type swaps, indentation
changes and truncations. Every mutant either loads or is refused with one line (SchemaError/InputError naming the
file); anything else escaping ``load_fleet`` (a traceback for the user) fails the test.

The mutants load in this process (the loader is offline: nothing is contacted), with the inventory replaced by a
loopback one so the result does not depend on a running lab. Bounded: MUTANTS mutants or MAX_SECONDS, whichever
comes first (the count run is printed).
"""

from __future__ import annotations

import difflib
import random
import time
from pathlib import Path

import pytest

from archfleet.errors import InputError
from archfleet.fleet import load_fleet
from archfleet.schema import SchemaError

PROJECT = Path(__file__).resolve().parents[2]
MUTANTS = 150
MAX_SECONDS = 120.0
SEED = 20261128
SWAPS = ("[]", "{}", "42", "-1", "0", "true", "no", "on", "~", "'text'", "0123", "1:20", ".inf", "[a, b]",
         "{a: 1}", '"{{ secrets.x }}"', "!!python/tuple [1]", "*nothing", "&anchor x", "'", "[", "\"{{ x")
INVENTORY = """\
amd64 = [("amd64-1", {"ssh_hostname": "127.0.0.1", "ssh_port": 9})]
arm64 = [("arm64-1", {"ssh_hostname": "127.0.0.1", "ssh_port": 9})]
"""


def mutate(lines: list[str], rng: random.Random) -> list[str]:
    lines = list(lines)
    for _ in range(rng.randint(1, 3)):
        if not lines:
            break
        index = rng.randrange(len(lines))
        kind = rng.choice(("delete", "duplicate", "swap", "indent", "truncate", "swap"))
        line = lines[index]
        if kind == "delete":
            del lines[index]
        elif kind == "duplicate":
            lines.insert(rng.randrange(len(lines) + 1), line)
        elif kind == "swap" and ": " in line:
            head = line.split(": ", 1)[0]
            lines[index] = f"{head}: {rng.choice(SWAPS)}"
        elif kind == "swap" and line.lstrip().startswith("- "):
            lines[index] = line[: len(line) - len(line.lstrip())] + "- " + rng.choice(SWAPS)
        elif kind == "indent":
            delta = rng.choice((-4, -2, -1, 1, 2, 4))
            lines[index] = (" " * delta + line) if delta > 0 else line[min(-delta, len(line) - len(line.lstrip())):]
        elif kind == "truncate":
            cut = rng.randrange(len(line) + 1)
            lines = [*lines[:index], line[:cut]]
    return lines


def fleet_folder(tmp_path: Path) -> tuple[Path, list[str]]:
    """A folder like the project's (images, templates) with a loopback inventory; the example's lines."""
    for name in ("images", "deploys"):
        (tmp_path / name).symlink_to(PROJECT / name)
    (tmp_path / "inventory.py").write_text(INVENTORY)
    text = (PROJECT / "fleet.yaml").read_text().replace("inventory: inventories/lab.py", "inventory: inventory.py")
    assert "inventory: inventory.py" in text
    return tmp_path / "fleet.yaml", text.splitlines()


def test_the_example_itself_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path, lines = fleet_folder(tmp_path)
    path.write_text("\n".join(lines) + "\n")
    fleet = load_fleet(path)
    assert {"v2ray", "ci-master", "ci-runner"} <= set(fleet.services)


def test_mutants_load_or_fail_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path, lines = fleet_folder(tmp_path)
    rng = random.Random(SEED)
    started = time.monotonic()
    outcomes = {"loaded": 0, "refused": 0}
    count = 0
    for count in range(1, MUTANTS + 1):
        mutant = mutate(lines, rng)
        path.write_text("\n".join(mutant) + "\n")
        try:
            load_fleet(path)
            outcomes["loaded"] += 1
        except InputError as error:
            message = str(error)
            assert "\n" not in message and message.strip(), f"mutant {count}: {message!r}"
            if isinstance(error, SchemaError):
                assert message.startswith(f"{path}:"), f"mutant {count}: {message}"
            outcomes["refused"] += 1
        except Exception as error:  # this is what the test is for
            change = "\n".join(difflib.unified_diff(lines, mutant, "fleet.yaml", "mutant", lineterm="", n=1))
            pytest.fail(f"mutant {count} (seed {SEED}) escaped as {type(error).__name__}: {error}\n{change}")
        if time.monotonic() - started > MAX_SECONDS:
            break
    print(f"mutation test: {count} mutants in {time.monotonic() - started:.1f} s: {outcomes}")
    assert count >= 30, "too few mutants ran in the time bound to mean anything"
    assert outcomes["refused"] > 0


def test_the_mutator_changes_the_file() -> None:
    rng = random.Random(SEED)
    lines = (PROJECT / "fleet.yaml").read_text().splitlines()
    assert sum(mutate(lines, rng) != lines for _ in range(50)) >= 45


def test_removing_the_service_a_template_names_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the mutation test: master.cfg.j2 renders `service_hosts[runner_service] | tojson`."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path, lines = fleet_folder(tmp_path)
    text = "\n".join(lines) + "\n"
    start = text.index("  ci-runner:\n")
    path.write_text(text[:start] + text[text.index("\n\n", start):])
    with pytest.raises(InputError, match=r"master\.cfg\.j2"):
        load_fleet(path)
