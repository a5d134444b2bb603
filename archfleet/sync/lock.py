"""The fleet lock (docs/lock.md): one lock per host, taken by a run before it changes that host and released at its
end, so two runs never change the same host at once. Two operators on disjoint hosts do not wait on each other.

How a command that changes hosts uses it (``archfleet sync``, ``rollback``, ``hosts bootstrap``)::

    from archfleet.sync.lock import take_locks

    held = take_locks(session, hosts, run, expires_after=seconds, say=say)   # raises LockRefused: nothing changed
    try:
        ...                                  # change the hosts of held.hosts; held.failed: hosts that could not be
    finally:                                 # reached to take the lock (report them as failed, change nothing there)
        held.release()                       # every lock this run took; never raises

- ``session``: an ``archfleet.sync.hosts.HostSession`` (its connections are reused for the changes that follow).
- ``run``: ``archfleet.operator.RunInfo``: its ``id`` is the lock's token (taking a lock the same token holds
  succeeds, and such a lock is not released by the inner taker), its ``operator``, ``command`` and ``message`` are
  what ``lock status`` and a refused run show, its ``lock_wait`` how long to wait for held locks.
- ``expires_after``: seconds after which the holder is deemed gone (the command's own time bound plus a margin).
- ``then``: a read to run on each host right after its lock is taken, in the same ssh command (``sync`` re-reads
  the services state under the lock); its output lines are ``held.reads[host]``.

All or nothing: when any host is held by another run, the locks this run took are released again and the run is
refused in one line (``LockRefused``, exit 1) naming the host, holder, command, age and message; with
``run.lock_wait`` it tries again, all or nothing each time, until that time is up. The first host (by name) is
taken alone before the others: two runs over the same hosts are decided there, so one of them wins. A stale lock
(its host rebooted, or it expired) is refused at once, with how to break it: waiting cannot end it.

The plain pyinfra deploys take the lock with :func:`lock_for_deploy`.
"""

from __future__ import annotations

import os
import random
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gevent
from pyinfra.api import BaseStateCallback, StringCommand

from archfleet.errors import OperationFailed
from archfleet.operator import RunInfo, new_run_id, operator_name
from archfleet.sync.outcome import Outcome, StepFailed
from archfleet.tasks.lock_commands import HostLock, break_lock, parse_lock, read_lock, release_lock, take_lock
from archfleet.tasks.service_commands import failure_reason

if TYPE_CHECKING:
    from pyinfra.api import Host, State

    from archfleet.sync.hosts import HostSession

Say = Callable[[str], None]
LOCK_STEP_SECONDS = 120.0  # one attempt on one host: connect and one command
RETRY_SECONDS = (1.0, 3.0)  # a waiting run tries again after a random pause in this range
DEPLOY_TOKEN_ENV = "ARCHFLEET_LOCK_TOKEN"  # the token a plain deploy run by archfleet takes the lock with
DEPLOY_MESSAGE_ENV = "ARCHFLEET_LOCK_MESSAGE"
EXPIRY_MARGIN_SECONDS = 300  # a run's locks expire this long after its time bound (`timeouts: run:`)
DEPLOY_EXPIRES_AFTER = 7200 + EXPIRY_MARGIN_SECONDS  # a plain deploy's lock: the default `timeouts: run:` and more


class LockRefused(OperationFailed):
    """A host of the run is locked by another run: nothing was changed."""


def refusal(host: str, lock: HostLock, waited: float = 0.0, wait_hint: bool = True) -> str:
    """The one line of a refused run."""
    if lock.stale:
        return (f"{host} is locked by {lock.holder()}, whose holder is gone (stale: {lock.stale}); "
                f"`archfleet lock release --limit {host}` breaks it")
    if waited:
        return (f"{host} is still locked by {lock.holder()} after waiting {waited:.0f} s; "
                "see archfleet lock status")
    if not wait_hint:
        return f"{host} is locked by {lock.holder()}; see archfleet lock status"
    return f"{host} is locked by {lock.holder()}; wait with --lock-wait SECONDS, or see archfleet lock status"


@dataclass
class HeldLocks:
    """The locks one run holds (see the module's docstring)."""

    session: HostSession
    token: str
    hosts: list[str]  # locked for this run (taken now, or already this token's)
    taken: list[str]  # taken by this call: what release() removes
    reads: dict[str, list[str]] = field(default_factory=dict)  # host -> the `then` read's output lines
    failed: dict[str, str] = field(default_factory=dict)  # host -> why its lock could not be taken
    say: Say = print

    def release_after(self, host: str, command: StringCommand) -> StringCommand:
        """``command`` and then, in the same ssh command, the release of the host's lock when this run took it
        (after ``command``'s failure too; its exit status is kept): a round trip saved. Call :meth:`released`
        with the output; a host not released that way is released by :meth:`release`."""
        if host not in self.taken:
            return command
        return StringCommand(command, "; rc=$?;", release_lock(self.token), "; exit $rc")

    def released(self, host: str, lines: list[str]) -> None:
        """The output of a :meth:`release_after` command that succeeded: a lock it released is not released again."""
        lock = parse_lock(lines)
        if lock is not None and lock.state == "released" and host in self.taken:
            self.taken.remove(host)

    def release(self) -> None:
        """Remove every lock this run took (only while it still holds this run's token); a host where that fails
        is said, with how to break its lock. Never raises."""
        if not self.taken:
            return
        names, self.taken = self.taken, []
        try:
            outcomes = self.session.each(names, "lock release", LOCK_STEP_SECONDS,
                                         lambda host: self.session.run(host, release_lock(self.token),
                                                                   "lock release failed"))
        except Exception as error:  # the release must never hide the run's own result
            outcomes = {name: Outcome(False, f"{type(error).__name__}: {error}") for name in names}
        for name, outcome in sorted(outcomes.items()):
            if isinstance(outcome, Outcome):
                self.say(f"[{name}] could not release the fleet lock: {outcome.reason} "
                         f"(`archfleet lock release --limit {name} --force` breaks it)")


@dataclass(frozen=True)
class Attempt:
    """What one try to lock a host found: the lock's state and every line the command printed (the ``then``
    read's with them)."""

    lock: HostLock
    lines: list[str]


def attempt(session: HostSession, names: list[str], command: StringCommand) -> dict[str, Attempt | Outcome]:
    """One try on every named host: the first alone, then, when it was not held, the others in parallel."""
    def take(host: Host) -> Attempt:
        lines = session.run(host, command, "lock failed")
        lock = parse_lock(lines)
        if lock is None:
            raise StepFailed("the lock command printed no lock state")
        return Attempt(lock, lines)

    results: dict[str, Attempt | Outcome] = dict(session.each(names[:1], "lock", LOCK_STEP_SECONDS, take))
    first = results.get(names[0]) if names else None
    if not (isinstance(first, Attempt) and first.lock.state == "held"):
        results.update(session.each(names[1:], "lock", LOCK_STEP_SECONDS, take))
    return results


def take_locks(session: HostSession, names: list[str], run: RunInfo, *, expires_after: float, say: Say,
               then: str | None = None) -> HeldLocks:
    """Lock every named host for ``run``, all or nothing (see the module's docstring). Raises LockRefused."""
    names = sorted(set(names))
    command = take_lock(run.id, run.operator, run.command, run.message, expires_after, then)
    started = time.monotonic()
    waiting_for = ""
    while True:
        results = attempt(session, names, command)
        locked = {n: r for n, r in results.items() if isinstance(r, Attempt) and r.lock.state != "held"}
        taken = sorted(n for n, r in locked.items() if r.lock.state == "taken")
        held = {n: r.lock for n, r in results.items() if isinstance(r, Attempt) and r.lock.state == "held"}
        if not held:
            return HeldLocks(session, run.id, sorted(locked), taken, reads={n: r.lines for n, r in locked.items()},
                             failed={n: r.reason for n, r in results.items() if isinstance(r, Outcome)}, say=say)
        HeldLocks(session, run.id, [], taken, say=say).release()
        host, lock = sorted(held.items())[0]
        waited = time.monotonic() - started
        if lock.stale or waited >= run.lock_wait:
            raise LockRefused(refusal(host, lock, waited if run.lock_wait else 0.0))
        holder = f"{host} {lock.record.get('token')}"
        if holder != waiting_for:
            waiting_for = holder
            say(f"lock: waiting for {host}, locked by {lock.holder()} (up to {run.lock_wait - waited:.0f} s more)")
        gevent.sleep(min(random.uniform(*RETRY_SECONDS), max(0.1, run.lock_wait - waited)))


class DeployLocks(BaseStateCallback):
    """The locks one pyinfra process (a plain deploy) took, each released on its host once the host's last
    operation succeeded. A host that failed keeps its lock, until ``archfleet lock release`` (docs/lock.md)."""

    def __init__(self, token: str):
        self.token = token
        self.taken: set[str] = set()

    def operation_host_success(self, state: State, host: Host, op_hash: str,  # type: ignore[override]
                               retry_count: int = 0) -> None:
        if host.name not in self.taken:
            return
        own = [each for each in state.get_op_order() if each in state.ops[host]]
        if own and op_hash == own[-1]:
            self.taken.discard(host.name)
            ok, output = host.run_shell_command(release_lock(self.token), print_output=False, **deploy_sudo(host))
            if not ok:
                print(f"[{host.name}] could not release the fleet lock: "
                      f"{failure_reason(output.stderr_lines, 'lock release failed')}", file=sys.stderr)


def deploy_sudo(host: Host) -> dict[str, Any]:
    return {"_sudo": True} if host.data.get("_sudo") else {}


def lock_for_deploy(command: str) -> None:
    """The first lines of a plain deploy: take this host's lock now, before any operation runs (a command, as a
    fact's read is, not an operation: a run that changes nothing still reports no change), and release it after
    the host's last operation. The token is ``$ARCHFLEET_LOCK_TOKEN`` (archfleet runs the deploy under its own
    run's lock: the deploy then neither takes nor releases it) or one per pyinfra process. A host locked by another
    run fails at its first operation, which says by whom; nothing else runs there. ``pyinfra --dry`` locks
    nothing."""
    from pyinfra import host, state
    from pyinfra.operations import server

    if "--dry" in sys.argv:
        return
    handler = next((h for h in state.callback_handlers if isinstance(h, DeployLocks)), None)
    if handler is None:
        handler = DeployLocks(os.environ.get(DEPLOY_TOKEN_ENV) or f"pyinfra-{new_run_id()}")
        state.add_callback_handler(handler)
    ok, output = host.run_shell_command(
        take_lock(handler.token, operator_name(), command, os.environ.get(DEPLOY_MESSAGE_ENV), DEPLOY_EXPIRES_AFTER),
        print_output=False, **deploy_sudo(host))
    lock = parse_lock(output.stdout_lines) if ok else None
    if lock is not None and lock.state in ("taken", "reentered"):
        if lock.state == "taken":
            handler.taken.add(host.name)
        return
    reason = (refusal(host.name, lock, wait_hint=False) if lock is not None else
              f"could not take the fleet lock: {failure_reason(output.stderr_lines, 'no lock state printed')}")
    server.shell(name=f"Fleet lock: {reason}",
                 commands=[f"echo {shlex.quote(reason)} >&2; exit 1"])


def read_locks_of(session: HostSession, names: list[str], bound: float) -> dict[str, HostLock | Outcome]:
    """Every named host's lock, read in parallel (``lock status``): a host that cannot be read gets an Outcome."""
    return session.each(names, "lock read", bound, lambda host: parsed(session.run(host, read_lock(),
                                                                                 "lock read failed")))


def break_locks(session: HostSession, tokens: dict[str, str], bound: float) -> dict[str, HostLock | Outcome]:
    """Break each host's lock that still holds the token read before (host -> token), in parallel."""
    return session.each(sorted(tokens), "lock break", bound,
                        lambda host: parsed(session.run(host, break_lock(tokens[host.name]), "lock break failed")))


def parsed(lines: list[str]) -> HostLock:
    lock = parse_lock(lines)
    if lock is None:
        raise StepFailed("the lock command printed no lock state")
    return lock
