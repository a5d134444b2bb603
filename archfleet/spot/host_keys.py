"""A new EC2 instance's SSH host keys, proven from its console output before archfleet first connects to it.

cloud-init prints the keys it generated on the instance's console, which EC2 hands out to the account
(``GetConsoleOutput``), not to whoever answers at the instance's address::

    ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----
    ec2: 256 SHA256:3hK... root@ip-10-0-0-1 (ED25519)
    ec2: -----END SSH HOST KEY FINGERPRINTS-----
    -----BEGIN SSH HOST KEY KEYS-----
    ssh-ed25519 AAAAC3... root@ip-10-0-0-1
    -----END SSH HOST KEY KEYS-----

For each host of the EC2 inventory (host data ``ec2_instance_id``) whose key is not recorded yet and would be
accepted on first use (``accept-new``), ``prove_new_host_keys`` reads the output and:

- full keys (checked against the fingerprints when both are printed): written to the host's known_hosts, so ssh
  checks the key it is shown against them;
- fingerprints only: the host's keys are read with ``ssh-keyscan`` and recorded only if every one is among the
  fingerprints; any other key is refused, nothing is recorded, and the host is connected with
  ``StrictHostKeyChecking=yes`` (ssh refuses it too);
- neither (cloud-init has not printed them yet, or the output cannot be read): accept-new stays, and says so.

The last block of each kind counts (a reboot that made new keys prints new blocks)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from archfleet.known_hosts import (
    TARGET_DATA,
    HostKey,
    HostKeyTarget,
    fingerprint,
    is_recorded,
    record_keys,
    scan_keys,
    target_of,
)

BLOCK = re.compile(r"-----(BEGIN|END) SSH HOST KEY (FINGERPRINTS|KEYS)-----")
FINGERPRINT = re.compile(r"\b\d+ (SHA256:[A-Za-z0-9+/]{43})\b")
KEY = re.compile(r"\b((?:ssh|ecdsa|sk)-[A-Za-z0-9@.-]+) (AAAA[A-Za-z0-9+/]+=*)")
ACCEPT_NEW = "accept-new"
UNPROVEN = "archfleet_key_unproven"  # host data: its key was refused here, and it is checked with `yes`


@dataclass(frozen=True)
class ConsoleKeys:
    """What the console output vouches for: SHA256 fingerprints and full keys (either may be empty)."""

    fingerprints: frozenset[str]
    keys: tuple[HostKey, ...]

    def __bool__(self) -> bool:
        return bool(self.fingerprints or self.keys)


def parse_console(text: str) -> ConsoleKeys:
    """The last fingerprint block's ``SHA256:`` fingerprints and the last key block's keys (pure)."""
    blocks: dict[str, list[str]] = {"FINGERPRINTS": [], "KEYS": []}
    current: list[str] | None = None
    for line in text.splitlines():
        marker = BLOCK.search(line)
        if marker:
            if marker[1] == "BEGIN":
                current = blocks[marker[2]] = []
            else:
                current = None
        elif current is not None:
            current.append(line)
    fingerprints = frozenset(m[1] for line in blocks["FINGERPRINTS"] for m in FINGERPRINT.finditer(line))
    keys = tuple(sorted({(m[1], m[2]) for line in blocks["KEYS"] for m in KEY.finditer(line)}))
    return ConsoleKeys(fingerprints, keys)


@dataclass(frozen=True)
class Verdict:
    """What was decided for one host: ``recorded`` keys, or a ``refusal``, or neither (accept-new stays)."""

    recorded: tuple[HostKey, ...] = ()
    refusal: str | None = None
    note: str = ""


def judge(console: ConsoleKeys, scan: Callable[[], list[HostKey]]) -> Verdict:
    """The decision for one host from its console's keys (pure but for ``scan``, called only when needed)."""
    if console.keys:
        stray = [kind for kind, blob in console.keys
                 if console.fingerprints and fingerprint(blob) not in console.fingerprints]
        if stray:
            return Verdict(refusal=f"its EC2 console output's {', '.join(stray)} key is not among the fingerprints "
                                   "printed beside it")
        return Verdict(recorded=console.keys)
    if not console.fingerprints:
        return Verdict(note="no SSH host key fingerprints in its EC2 console output (yet)")
    presented = scan()
    if not presented:
        return Verdict(refusal="it does not answer ssh-keyscan yet, so its key cannot be checked against the "
                               "fingerprints in its EC2 console output")
    stray = [f"{kind} {fingerprint(blob)}" for kind, blob in presented if fingerprint(blob) not in console.fingerprints]
    if stray:
        return Verdict(refusal=f"the key it presents ({', '.join(stray)}) is not among the fingerprints in its EC2 "
                               "console output")
    return Verdict(recorded=tuple(presented))


def read_console(ec2: Any, instance_id: str) -> tuple[ConsoleKeys, str]:
    """The instance's console keys, or empty ones and why (the API refused, no output yet)."""
    import botocore.exceptions

    from archfleet.spot.connection import error_code

    try:
        try:  # the newest output (Nitro instances); others keep a snapshot EC2 refreshes now and then
            output = ec2.client.get_console_output(InstanceId=instance_id, Latest=True).get("Output") or ""
        except botocore.exceptions.ClientError as error:
            if not error_code(error).startswith(("Unsupported", "InvalidParameter")):
                raise
            output = ec2.client.get_console_output(InstanceId=instance_id).get("Output") or ""
    except botocore.exceptions.ClientError as error:
        return ConsoleKeys(frozenset(), ()), f"its EC2 console output could not be read ({error_code(error)})"
    except botocore.exceptions.BotoCoreError as error:
        return ConsoleKeys(frozenset(), ()), f"its EC2 console output could not be read ({type(error).__name__})"
    return parse_console(output), ""


def new_ec2_targets(inventory: Any, names: Iterable[str]) -> dict[str, tuple[HostKeyTarget, str, str | None]]:
    """``{host: (target, instance id, region)}``: the named EC2 hosts whose key would be accepted on first use (or
    was refused by an earlier look in this process: it is looked at again, as ``spot up --sync`` retries)."""
    found = {}
    for name in names:
        host = inventory.get_host(name, None)
        instance_id = host.data.get("ec2_instance_id") if host is not None else None
        if not instance_id:
            continue
        target = target_of(name, {key: host.data.get(key) for key in TARGET_DATA})
        looked = host.data.get(UNPROVEN) or (target is not None and target.checking == ACCEPT_NEW)
        if target is not None and looked and not is_recorded(target):
            found[name] = (target, str(instance_id), host.data.get("ec2_region"))
    return found


def prove_new_host_keys(inventory: Any, names: Iterable[str], say: Callable[[str], None]) -> dict[str, str]:
    """Record the keys of the named new EC2 hosts from their console output (see the module), before any
    connection. ``{host: reason}`` for the hosts refused; their host data now says ``StrictHostKeyChecking=yes``,
    so no client accepts their key on first use."""
    pending = new_ec2_targets(inventory, names)
    if not pending:
        return {}
    from concurrent.futures import ThreadPoolExecutor

    from archfleet.spot.connection import connect

    clients = {region: connect(region) for region in {region for _, _, region in pending.values()}}

    def decide(item: tuple[HostKeyTarget, str, str | None]) -> Verdict:
        target, instance_id, region = item
        console, why = read_console(clients[region], instance_id)
        verdict = judge(console, lambda: scan_keys(target))
        return Verdict(note=why) if why else verdict

    with ThreadPoolExecutor(max_workers=min(16, len(pending))) as pool:
        verdicts = dict(zip(pending, pool.map(decide, pending.values()), strict=True))
    refused = {}
    for name, verdict in verdicts.items():
        target = pending[name][0]
        if verdict.recorded:
            record_keys(target, verdict.recorded)
            prints = ", ".join(f"{kind} {fingerprint(blob)}" for kind, blob in verdict.recorded)
            say(f"{name}: host key recorded from its EC2 console output before the first connection: {prints}")
        elif verdict.refusal:
            refused[name] = f"host key refused: {verdict.refusal}; nothing recorded in {target.file}"
            data = inventory.get_host(name).data
            data.ssh_strict_host_key_checking, data.archfleet_key_unproven = "yes", True
            say(f"{name}: {refused[name]}")
        else:
            say(f"{name}: {verdict.note}: its key is accepted on first use (accept-new) and printed when recorded")
    return refused
