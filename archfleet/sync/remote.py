"""A command on many hosts at once, its output brought back line by line with each host's name in front: what
``archfleet logs`` and ``archfleet exec`` run (the command text: ``tasks/container_commands.py``).

Each host gets one plain ``ssh`` (``archfleet.sync.read.ssh_command``: the fleet's ``ssh:`` settings, archfleet's
known_hosts, sudo), at most ``parallel`` at a time, all read from this one thread with a selector. Lines are
prefixed ``HOST | `` with the names aligned. ``PrefixedLines(live=False)`` prints each host's lines as a block, in
host order, as soon as the hosts before it are done; ``live=True`` prints stdout lines as they arrive, from every
host. A host's stderr is held until it ends: a host that fails (ssh could not connect, the script refused, no
output within the bound) gets one line saying why, instead of ssh's own noise.

Ctrl-C (KeyboardInterrupt) stops every ssh this started, waits for each, and goes on up (exit 130 at the CLI).
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from archfleet.errors import InputError, OperationFailed
from archfleet.fleet import Fleet
from archfleet.known_hosts import NewKeyWatch, target_of
from archfleet.ssh import SSH_FAILED
from archfleet.sync.outcome import connect_reason, with_key_advice
from archfleet.sync.read import TARGET_KEYS, could_not_start, readable_over_openssh, ssh_command
from archfleet.sync.scope import hosts_in_scope, placement_of
from archfleet.tasks.container_commands import FAILURE_PREFIX, REFUSED

SEPARATOR = " | "
STOP_SECONDS = 3  # what a stopped ssh is given to exit before it is killed


@dataclass
class HostEnd:
    """How the command ended on one host."""

    host: str
    exit_code: int | None  # the command's own exit code; None when it did not run to its end (see ``failure``)
    failure: str = ""  # why the host gave no full answer, in a few words ("" when the command ran)
    stderr: list[str] = field(default_factory=list)


class PrefixedLines:
    """Prints the hosts' lines, each as ``HOST | TEXT`` (names padded to the longest): stdout lines to ``out``,
    stderr lines and failures to ``err``. ``live``: stdout lines as they arrive; else each host's lines as one block,
    in ``hosts``' order. A failure is one line, ``LABEL: HOST: REASON``."""

    def __init__(self, hosts: list[str], *, live: bool, label: str, out: TextIO | None = None,
                 err: TextIO | None = None):
        self.hosts, self.live, self.label = hosts, live, label
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.width = max((len(h) for h in hosts), default=0)
        self.held: dict[str, list[tuple[TextIO, str]]] = {h: [] for h in hosts}  # lines not printed yet
        self.ended: set[str] = set()
        self.printed = 0  # block mode: how many hosts, in order, are printed

    def prefixed(self, host: str, text: str) -> str:
        return f"{host:<{self.width}}{SEPARATOR}{text}"

    def line(self, host: str, text: str) -> None:
        """A stdout line of ``host``."""
        self.held[host].append((self.out, self.prefixed(host, text)))
        if self.live:
            self.write(host)

    def end(self, host: str, end: HostEnd) -> None:
        """``host`` is done: its stderr lines, or the one line of its failure."""
        if end.failure:
            self.held[host].append((self.err, f"{self.label}: {host}: {end.failure}"))
        else:
            self.held[host].extend((self.err, self.prefixed(host, text)) for text in end.stderr)
        self.ended.add(host)
        if self.live:
            self.write(host)
            return
        while self.printed < len(self.hosts) and self.hosts[self.printed] in self.ended:
            self.write(self.hosts[self.printed])
            self.printed += 1

    def write(self, host: str) -> None:
        for stream, text in self.held[host]:
            stream.write(text + "\n")
        self.held[host].clear()
        self.out.flush()
        self.err.flush()


class RunningHost:
    """One host's ssh: its pipes, the partial line of each, what it wrote on stderr, when it last said anything."""

    def __init__(self, process: subprocess.Popen[bytes]):
        assert process.stdout is not None and process.stderr is not None
        self.process = process
        self.stdout, self.stderr = process.stdout.fileno(), process.stderr.fileno()
        self.partial: dict[int, bytes] = {self.stdout: b"", self.stderr: b""}
        self.open = {self.stdout, self.stderr}
        self.stderr_lines: list[str] = []
        self.said_anything = False  # a stdout line came: the command ran (an exit of 255 is then its own)
        self.last_heard = time.monotonic()


def service_hosts(fleet: Fleet, service: str, limit: str | None, label: str) -> list[Any]:
    """The hosts of ``limit`` (host or group names, comma-separated; None: every host) on which ``service`` is
    placed, in name order, as the inventory's host objects; bad input (an unknown service, no such host in the
    limit, a host only pyinfra reaches) is an InputError naming it."""
    placement = placement_of(fleet)
    if service not in placement.services:
        known = ", ".join(sorted(placement.services)) or "none"
        raise InputError(f"{label}: {fleet.path} declares no service {service!r} (services: {known})")
    names = [name for name in hosts_in_scope(fleet, limit) if service in placement.by_host.get(name, ())]
    if not names:
        raise InputError(f"{label}: {service} runs on no host of --limit {limit} "
                         f"(it runs on: {', '.join(placement.hosts_of(service)) or 'no host'})")
    assert fleet.hosts is not None  # placement_of refused a fleet without an inventory
    hosts = [fleet.hosts.get_host(name) for name in names]
    for host in hosts:
        if not readable_over_openssh(host):
            raise InputError(f"{label}: {host.name} is reached only through pyinfra (a connector, a password or "
                             f"paramiko in its data): {label} reaches hosts with plain OpenSSH")
    if shutil.which("ssh") is None:
        raise OperationFailed(f"{label}: no `ssh` on this machine (OpenSSH's client reaches the hosts)")
    return hosts


def run_everywhere(hosts: list[Any], command_of: Callable[[Any], str], output: PrefixedLines, *, connect_timeout: int,
                   parallel: int, idle_bound: float | None = None, hold_stdin: bool = False,
                   exit_code_is_failure: bool = False, say: Callable[[str], None] | None = None
                   ) -> dict[str, HostEnd]:
    """``command_of(host)`` on every host (the inventory's host objects), at most ``parallel`` at a time, its lines
    given to ``output`` as they come. ``idle_bound``: a host that writes nothing for that many seconds is stopped
    and fails. ``hold_stdin``: each ssh's stdin is a pipe this process holds open (a remote script can watch it to
    stop when this process goes); else /dev/null. ``exit_code_is_failure``: a command that exits non-zero failed
    (its last stderr line says why); else its exit code is its result. New host keys recorded on the way are given
    to ``say``, one line each."""
    targets = {host.name: target for host in hosts
               if (target := target_of(host.name, {key: host.data.get(key) for key in TARGET_KEYS})) is not None}
    new_keys = NewKeyWatch(targets.values())
    waiting = deque(hosts)
    running: dict[str, RunningHost] = {}
    ends: dict[str, HostEnd] = {}
    selector = selectors.DefaultSelector()

    def start_waiting() -> None:
        while waiting and len(running) < max(1, parallel):
            host = waiting.popleft()
            try:
                process = subprocess.Popen(ssh_command(host, command_of(host), connect_timeout),
                                           stdin=subprocess.PIPE if hold_stdin else subprocess.DEVNULL,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            except OSError as error:  # out of open files or processes: this host fails, the others go on
                finish(host.name, HostEnd(host.name, None, could_not_start(output.label, error)))
                continue
            running[host.name] = RunningHost(process)
            for descriptor in (process.stdout, process.stderr):
                selector.register(descriptor, selectors.EVENT_READ, host.name)  # type: ignore[arg-type]

    def finish(name: str, end: HostEnd) -> None:
        ends[name] = end
        output.end(name, end)

    def take(name: str, host: RunningHost, descriptor: int, chunk: bytes) -> None:
        host.last_heard = time.monotonic()
        *lines, host.partial[descriptor] = (host.partial[descriptor] + chunk).split(b"\n")
        for raw in lines:
            deliver(name, host, descriptor, raw)

    def deliver(name: str, host: RunningHost, descriptor: int, raw: bytes) -> None:
        text = raw.decode(errors="replace").removesuffix("\r")
        if descriptor == host.stdout:
            host.said_anything = True
            output.line(name, text)
        else:
            host.stderr_lines.append(text)

    def closed(name: str, host: RunningHost, descriptor: int) -> None:
        """The end of one of the host's pipes: its last line, if it had no newline, is a line too."""
        selector.unregister(descriptor)
        host.open.discard(descriptor)
        if host.partial[descriptor]:
            deliver(name, host, descriptor, host.partial[descriptor])
            host.partial[descriptor] = b""

    def close(name: str, host: RunningHost, timed_out: bool) -> None:
        for descriptor in list(host.open):
            closed(name, host, descriptor)
        process = host.process
        if timed_out:
            process.kill()
        returncode = process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        del running[name]
        finish(name, ending(name, host, returncode, timed_out))

    def ending(name: str, host: RunningHost, returncode: int, timed_out: bool) -> HostEnd:
        stderr = host.stderr_lines
        if timed_out:
            return HostEnd(name, None, f"no output for {idle_bound:g} s (stopped)", stderr)
        if returncode == SSH_FAILED and not host.said_anything:  # ssh's own failure: the command did not run
            target = targets.get(name)
            reason = connect_reason("\n".join(stderr), connect_timeout)
            return HostEnd(name, None, with_key_advice(name, reason, target.file if target else None), stderr)
        if returncode == REFUSED and stderr and stderr[-1].startswith(FAILURE_PREFIX):
            return HostEnd(name, None, stderr[-1].removeprefix(FAILURE_PREFIX), stderr[:-1])
        if returncode != 0 and exit_code_is_failure:
            return HostEnd(name, returncode, f"exited {returncode}: {(stderr or ['no output'])[-1]}", stderr)
        return HostEnd(name, returncode, "", stderr)

    try:
        start_waiting()
        while running:
            timeout = None
            if idle_bound is not None:
                timeout = max(0.0, min(h.last_heard for h in running.values()) + idle_bound - time.monotonic())
            for key, _ in selector.select(timeout):
                name, host = key.data, running[key.data]
                chunk = os.read(key.fd, 65536)
                if chunk:
                    take(name, host, key.fd, chunk)
                else:
                    closed(name, host, key.fd)
            now = time.monotonic()
            for name, host in list(running.items()):
                if not host.open:
                    close(name, host, timed_out=False)
                elif idle_bound is not None and now - host.last_heard >= idle_bound:
                    close(name, host, timed_out=True)
            start_waiting()
    except BaseException:
        stop(host.process for host in running.values())
        raise
    finally:
        selector.close()
    if say is not None:
        for line in new_keys.report([host.name for host in hosts]):
            say(line)
    return ends


def stop(processes: Any) -> None:
    """Stop every ssh (SIGTERM, then SIGKILL after STOP_SECONDS) and wait for each: none is left behind."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
