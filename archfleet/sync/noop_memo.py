"""A no-op sync's verdict, remembered for the next sync of the same, unchanged fleet.

A no-op sync is what users run most, and most of its cost on the machine that runs it is archfleet's own start:
importing the loader, the templates and the planner, then loading, placing and rendering the fleet, to conclude
"nothing to change" from the very inputs the last sync concluded it from. The plan is a pure function of those
inputs, so it is worth remembering as a function's result is: by everything it was computed from.

When a sync changed nothing on any host (every host read, every plan empty, every tag in the fleet's own registry),
``remember_verdict`` adds to the reads it remembered (archfleet.sync.early) what the next sync needs to reach the
same verdict without planning:

- the key: the reads' own inputs (the fleet file, inventory, templates, secret files... by size, mtime and inode),
  the whole environment and archfleet's code and libraries (``environment_digest``, ``code_identity``: digests,
  never the values), ``--dry`` and ``--prune``;
- per host, a digest of its ServicesState fact (login ages aside: they matter only to a pull);
- per tag, the digest of its index as the registry served it, and how to ask that registry again (address, API
  host, user, the password file's path and the CA file: no secret);
- the report it printed: its title, its text and its JSON, as printed.

The next ``archfleet sync`` with the same arguments calls ``settled`` right after the reads started at launch,
before importing the rest of archfleet. It asks the registry for every tag (once per sync, as always: with
archfleet.registry_probe, which imports only ``ssl`` and ``socket``) and waits for every host's read. Nothing on
this path imports ``dataclasses``, ``urllib.request`` or the loader: each costs more than the host's read does to
parse (tests/test_sync_noop_memo.py holds it to that list). Only when every key, every tag's digest and every
host's digest are as remembered does it print the remembered report (stdout as the full sync prints it) and exit;
anything else (a read that failed or differs, a tag that moved, a registry error, a new host key recorded) hands
the finished reads to the full sync, which then plans as usual with no second command on any host.
``archfleet sync --fresh`` skips what was remembered.

What the verdict does not repeat: the check that every platform image the index names is still in the registry and
really of its platform. The index is content-addressed, so its entries are those that were verified; a registry
that has since deleted one of them is found by the next sync that must pull, or by ``archfleet images verify``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from archfleet.facts.service_reads import ServicesStateValue, parse_services_state
from archfleet.sync import early

if TYPE_CHECKING:
    from archfleet.fleet import Fleet
    from archfleet.images.verify import VerifyReport
    from archfleet.sync.report import SyncReport

MEMO_VERSION = 2
SHELL_VARIABLES = ("_", "SHLVL", "OLDPWD")
LIBRARIES = ("jinja2", "markupsafe", "yaml")  # what the load and the renders run besides archfleet's own code

Say = Callable[[str], None]


def code_identity() -> str:
    """A digest of the code a plan is computed with: every module of archfleet (path, size, mtime), the libraries
    it renders and parses with, and the interpreter."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    entries: list[Any] = [sys.version, sys.prefix]
    for folder, folders, files in os.walk(package, followlinks=True):
        folders[:] = sorted(f for f in folders if f != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                status = os.stat(os.path.join(folder, name))
                entries.append([os.path.relpath(os.path.join(folder, name), package), status.st_size,
                                status.st_mtime_ns])
    for library in LIBRARIES:
        for entry in sys.path:
            init = os.path.join(entry or ".", library, "__init__.py")
            if os.path.isfile(init):
                status = os.stat(init)
                entries.append([init, status.st_size, status.st_mtime_ns])
                break
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def environment_digest() -> str:
    """A digest of the whole environment (a secret or a template value may come from any variable), but for what
    a shell sets anew for each command it runs (``_``, the program's own path) or each shell it starts."""
    variables = sorted((name, value) for name, value in os.environ.items() if name not in SHELL_VARIABLES)
    return hashlib.sha256(json.dumps(variables).encode()).hexdigest()


def state_digest(state: ServicesStateValue) -> str:
    """A digest of a host's ServicesState fact as far as a plan that changes nothing depends on it (the logins'
    ages only decide whether a pull renews a login first)."""
    planned = {key: value for key, value in state.items() if key != "login_ages"}
    return hashlib.sha256(json.dumps(planned, sort_keys=True).encode()).hexdigest()


def flags_of(dry: bool, prune: bool) -> dict[str, bool]:
    return {"dry": dry, "prune": prune}


# --- remembering (the full sync, once it has found nothing to change) ---------------------------------------------


def verdict_of(fleet: Fleet, states: dict[str, ServicesStateValue], report: SyncReport,
               reports: dict[str, VerifyReport], *, dry: bool, prune: bool, bound: float) -> dict[str, Any] | None:
    """What the next sync needs to reach this sync's verdict again, or None when this sync is not one to repeat:
    a host changed, failed or would change, or a tag is not in the fleet's own registry or was not read."""
    from archfleet.fleet import service_reference
    from archfleet.references import api_host, parse
    from archfleet.sync.report import UNCHANGED, sync_title

    if not report.ok or set(states) != set(report.hosts) or any(
            entry.status != UNCHANGED for entry in report.hosts.values()):
        return None
    registry = fleet.registry.resolve()
    assert fleet.placement is not None
    tags: dict[str, dict[str, str]] = {}
    for service in sorted({spec.name for host in states for spec in fleet.placement.services_on(host)}):
        reference = service_reference(fleet, fleet.services[service])
        parsed = parse(reference)
        verified = reports.get(reference)
        if parsed.registry != registry.address or verified is None or verified.index_digest is None or not parsed.tag:
            return None
        tags[reference] = {"repository": parsed.repository, "tag": parsed.tag, "digest": verified.index_digest}
    return {
        "version": MEMO_VERSION, "flags": flags_of(dry, prune), "code": code_identity(),
        "environment": environment_digest(), "bound": bound,
        "title": sync_title(len(fleet.services), str(fleet.path), str(fleet.inventory), dry),
        "registry": {"address": registry.address, "api_host": api_host(registry.address) if registry.address else None,
                     "username": registry.username,
                     "password_file": str(registry.password_file) if registry.password_file else None,
                     "ca_file": str(registry.ca_file) if registry.ca_file else None},
        "tags": tags,
        "states": {host: state_digest(state) for host, state in sorted(states.items())},
        "ok": report.ok, "printed": {"text": "\n".join(report.lines()), "json": report.as_json()},
    }


def remember_verdict(fleet: Fleet, states: dict[str, ServicesStateValue], report: SyncReport,
                     reports: dict[str, VerifyReport], *, dry: bool, prune: bool, bound: float, say: Say) -> None:
    """Remember this sync's verdict with its reads (only when the reads were remembered: archfleet.sync.early)."""
    if not early.remembering():
        return
    verdict = verdict_of(fleet, states, report, reports, dry=dry, prune=prune, bound=bound)
    if verdict is not None:
        early.remember_noop(verdict, say)


# --- the next sync ---------------------------------------------------------------------------------------------


def tags_as_remembered(registry: dict[str, Any], tags: dict[str, dict[str, str]]) -> bool:
    """Every tag's index digest, asked of the registry now, is the remembered one (one request per tag, with the
    credentials the full sync uses for the fleet's own registry: RegistrySpec.password reads the same file).
    Each is asked by archfleet.registry_probe; what it cannot tell is asked by RegistryClient."""
    from archfleet.registry_probe import manifest_digest

    password_file, ca_file, username = registry.get("password_file"), registry.get("ca_file"), registry.get("username")
    password = None
    if password_file:
        with open(password_file, encoding="utf-8") as file:
            password = file.read().strip()
    client = None
    for tag in tags.values():
        digest = manifest_digest(registry["api_host"], tag["repository"], tag["tag"], username, password, ca_file)
        if digest is None:
            if client is None:
                from pathlib import Path

                from archfleet.registry_client import RegistryClient

                client = RegistryClient(registry["address"], username, password, Path(ca_file) if ca_file else None,
                                        unknown_repository_fails=True)
            digest = client.manifest(tag["repository"], tag["tag"]).digest
        if digest != tag["digest"]:
            return False
    return True


def hosts_as_remembered(reads: early.EarlyReads, memo: dict[str, Any]) -> bool:
    """Every host's read finished within the bound, succeeded, and its state is the remembered one; no host key
    was recorded on the way (the full sync reports those)."""
    finished = reads.wait(float(memo["bound"]))
    if finished is None or set(finished) != set(memo["states"]):
        return False
    for name, read in finished.items():
        if read.returncode != 0:
            return False
        state = parse_services_state(read.stdout.decode(errors="replace").splitlines())
        if state_digest(state) != memo["states"][name]:
            return False
    for file, before in reads.watched_before.items():
        with open(file, "rb") as handle:
            if handle.read() != before:
                return False
    return True


def remembered_verdict(argv: list[str]) -> dict[str, Any] | None:
    """The remembered verdict of this sync's arguments, when its reads were started at launch and its code,
    environment and flags are those it was remembered with."""
    reads = early.started()
    memo = reads.cached.get(early.NOOP) if reads is not None else None
    if reads is None or not isinstance(memo, dict) or memo.get("version") != MEMO_VERSION:
        return None
    same = (memo.get("flags") == flags_of("--dry" in argv, "--prune" in argv)
            and set(memo.get("states") or ()) == set(reads.argv)
            and memo.get("environment") == environment_digest() and memo.get("code") == code_identity())
    return memo if same else None


def settled(argv: list[str], say: Say) -> int | None:
    """``archfleet sync ARGV`` answered from the last sync's verdict: the exit code once the report is printed, or
    None when the full sync must run (the reads, finished or not, stay for it to adopt)."""
    memo = remembered_verdict(argv)
    reads = early.started()
    if memo is None or reads is None:
        return None
    try:
        if not tags_as_remembered(memo["registry"], memo["tags"]) or not hosts_as_remembered(reads, memo):
            return None
    except Exception:  # a registry or file error, an odd answer: the full sync meets it again and says what it is
        return None
    say(memo["title"])
    say(f"sync: {len(memo['states'])} host(s) and {len(memo['tags'])} tag(s) read: each is as the last sync found "
        "it, and nothing that sync was planned from changed (fleet file, inventory, templates, environment, code): "
        "its plan stands, nothing to change (`sync --fresh` plans from scratch)")
    print(memo["printed"]["json" if "--json" in argv else "text"])
    sys.stdout.flush()
    return 0 if memo["ok"] else 1
