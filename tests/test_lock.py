"""The fleet lock's pure parts (docs/lock.md): what a lock read says (free, held, stale and why), the one line a
refused run prints, and the command text's one claim: every value is an argument, never script text. How the
scripts behave on a host is the lab's test (tests/lab/test_fleet_lock.py)."""

from __future__ import annotations

import pytest

from archfleet.cli import build_parser
from archfleet.commands.lock import run_info
from archfleet.errors import InputError
from archfleet.sync.lock import refusal
from archfleet.tasks.lock_commands import HostLock, how_long, parse_lock, take_lock

BOOT = "6f1c1a0e-0000-4000-8000-000000000001"


def read(now: int, **record: str) -> HostLock:
    lines = [f"lock_now={now}", f"lock_current_boot={BOOT}", f"lock_state={'held' if record else 'free'}"]
    lines += [f"lock_{key}={value}" for key, value in record.items()]
    lock = parse_lock(["platform=Linux x86_64", *lines, "engine=up"])  # shares its output with other reads
    assert lock is not None
    return lock


HELD = {"token": "20261208T023512Z-3fa9", "holder": "alice@mac", "since": "1000", "command": "sync",
        "message": "v2ray 1.2", "expires": "8500", "boot_id": BOOT}


def test_a_held_lock_reads_as_its_holder_command_age_and_message() -> None:
    lock = read(1014, **HELD)
    assert lock.holder() == 'alice@mac (sync, 14 s ago: "v2ray 1.2")'
    assert lock.stale is None and lock.age == 14
    assert read(1014, **{**HELD, "message": ""}).holder() == "alice@mac (sync, 14 s ago)"
    assert read(1014).record == {} and read(1014).as_json()["state"] == "free"


@pytest.mark.parametrize(("now", "boot", "stale"), [
    (8499, BOOT, None),
    (8500, BOOT, "expired"),
    (2000, "6f1c1a0e-0000-4000-8000-000000000002", "host rebooted"),
    (2000, "unknown", None),  # a host without a boot id: only the expiry tells
])
def test_a_lock_is_stale_when_its_host_rebooted_or_it_expired(now: int, boot: str, stale: str | None) -> None:
    assert read(now, **{**HELD, "boot_id": boot}).stale == stale


def test_no_lock_lines_is_no_lock_state() -> None:
    assert parse_lock(["platform=Linux x86_64", "engine=up"]) is None


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (119, "119 s"), (120, "2 min"), (7200, "2 h"),
                                               (7560, "2 h 6 min"), (200000, "2 d")])
def test_ages_read_as_people_say_them(seconds: int, text: str) -> None:
    assert how_long(seconds) == text


def test_a_refused_run_says_who_holds_which_host_and_what_to_do_in_one_line() -> None:
    assert refusal("arm64-1", read(1014, **HELD)) == (
        'arm64-1 is locked by alice@mac (sync, 14 s ago: "v2ray 1.2"); wait with --lock-wait SECONDS, or see '
        "archfleet lock status")
    assert refusal("arm64-1", read(1044, **HELD), waited=30) == (
        'arm64-1 is still locked by alice@mac (sync, 44 s ago: "v2ray 1.2") after waiting 30 s; see archfleet lock '
        "status")
    assert refusal("arm64-1", read(9000, **HELD)) == (
        'arm64-1 is locked by alice@mac (sync, 2 h 13 min ago: "v2ray 1.2"), whose holder is gone (stale: expired); '
        "`archfleet lock release --limit arm64-1` breaks it")


def test_every_value_reaches_the_take_script_as_an_argument() -> None:
    """The script's text is the same whatever the values; a message's newline cannot add a line to the record."""
    plain = take_lock("t", "alice@mac", "sync", "v2ray", 60).get_raw_value()
    hostile = take_lock("t", "alice@mac", "sync", "$(reboot)'; rm -rf /\nexpires=1", 60).get_raw_value()
    assert plain.split("archfleet-lock-take")[0] == hostile.split("archfleet-lock-take")[0]
    assert "'$(reboot)'\"'\"'; rm -rf / expires=1'" in hostile


def test_lock_wait_and_message_make_the_run_info() -> None:
    args = build_parser().parse_args(["sync", "--lock-wait", "30", "--message", "v2ray 1.2"])
    run = run_info(args, "sync")
    assert (run.command, run.lock_wait, run.message) == ("sync", 30.0, "v2ray 1.2")
    with pytest.raises(InputError, match=r"--lock-wait: not a number of seconds: '-1'"):  # exit 2
        build_parser().parse_args(["sync", "--lock-wait", "-1"])
