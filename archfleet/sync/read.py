"""Reading every host with one command over the system's OpenSSH client, without pyinfra: what ``archfleet sync``
does first, and all a no-op sync does on a host.

Each host gets exactly one ``ssh HOST -- sh -c COMMAND`` (through ``sudo -H -n`` when its data says ``_sudo``), at
most ``--parallel`` hosts at a time (archfleet.sync.scope.parallel_of), each bounded from its own start: a host that
does not answer in time fails alone, the others are read.
The ssh options come from the host's data exactly as archfleet's OpenSSH connector makes them
(``archfleet.ssh.ssh_options``: key, port, user, known_hosts and its checking), without a master connection: a
host that must change is reached again through pyinfra, and one that need not (the usual case) costs one
handshake, as ``ssh HOST true`` does. A host only pyinfra can reach (a connector such as ``@local``, a password,
``archfleet_ssh: paramiko``) or a machine without ``ssh`` is not readable here (``readable_over_openssh``): such
an inventory is read through pyinfra instead, in parallel and bounded, in a process patched for gevent
(``cooperative_process``).
"""

from __future__ import annotations

import errno
import os
import selectors
import shlex
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from archfleet.known_hosts import NewKeyWatch, target_of
from archfleet.ssh import SSH_FAILED, ssh_destination, ssh_options
from archfleet.sync.outcome import Outcome, connect_reason, with_key_advice
from archfleet.sync.scope import automatic_parallel, out_of_open_files

T = TypeVar("T")
TARGET_KEYS = ("ssh_known_hosts_file", "ssh_hostname", "ssh_port", "ssh_strict_host_key_checking")
PYINFRA_ONLY_KEYS = ("ssh_password", "ssh_key_password", "_sudo_password", "_sudo_user", "_su_user", "_doas")


def readable_over_openssh(host: Any) -> bool:
    """A host of the default SSH kind that OpenSSH can reach in batch mode, with at most plain sudo."""
    data = host.data
    return (not host.name.startswith("@") and data.get("archfleet_ssh") != "paramiko"
            and not any(data.get(key) for key in PYINFRA_ONLY_KEYS))


def all_readable_over_openssh(hosts: Iterable[Any]) -> bool:
    return shutil.which("ssh") is not None and all(readable_over_openssh(host) for host in hosts)


def remote_command(command: str, sudo: bool) -> str:
    """The command line the host's shell runs: ``sh -c COMMAND``, through ``sudo -H -n`` (never a password
    prompt) when ``sudo``, as pyinfra runs a fact's command."""
    shell = f"sh -c {shlex.quote(command)}"
    return f"sudo -H -n {shell}" if sudo else shell


def ssh_command(host: Any, command: str, connect_timeout: int) -> list[str]:
    data = {key: host.data.get(key) for key in (
        "ssh_hostname", "ssh_port", "ssh_user", "ssh_key", "ssh_known_hosts_file", "ssh_strict_host_key_checking",
        "ssh_config_file", "ssh_connect_timeout")}
    destination = ssh_destination(data, host.name)  # a host name or address, never an ssh option
    return ["ssh", *ssh_options(data, "none", connect_timeout), destination, "--",
            remote_command(command, bool(host.data.get("_sudo")))]


def could_not_start(what: str, error: OSError) -> str:
    """The reason a host fails when its ssh could not be started: out of open files (EMFILE, ENFILE) says which
    limit and what to do; anything else in the system's words."""
    if error.errno in (errno.EMFILE, errno.ENFILE):
        return out_of_open_files(f"could not start ssh for {what}")
    return f"could not start ssh for {what}: {error.strerror or error}"


class RunningRead:
    """One host's ssh, started when the host got its slot: its output so far and its own deadline."""

    def __init__(self, process: subprocess.Popen[bytes], deadline: float):
        assert process.stdout is not None and process.stderr is not None
        self.process, self.deadline = process, deadline
        self.stdout, self.stderr = process.stdout.fileno(), process.stderr.fileno()
        self.output: dict[int, list[bytes]] = {self.stdout: [], self.stderr: []}  # file descriptor -> chunks read
        self.open = {self.stdout, self.stderr}

    def text(self, descriptor: int) -> bytes:
        return b"".join(self.output[descriptor])


class HostReads:
    """``command`` on every host, one ``ssh`` each, at most ``parallel`` at a time (archfleet.sync.scope): the
    first ``parallel`` start at once, so the caller can do its own work (imports, the registry) while they answer,
    and ``results()`` starts each next host as a slot frees. A host's time bound, ``bound`` seconds, starts when
    its ssh does: waiting for a slot is not running out of time. ``deadline`` (monotonic): hosts not started by
    then fail with ``deadline_reason`` (the whole run's bound)."""

    def __init__(self, hosts: list[Any], command: str, *, what: str, connect_timeout: int, bound: float,
                 say: Callable[[str], None], parallel: int, deadline: float | None = None,
                 deadline_reason: str = ""):
        self.what, self.command, self.connect_timeout, self.bound, self.say = what, command, connect_timeout, bound, say
        self.parallel, self.deadline, self.deadline_reason = max(1, parallel), deadline, deadline_reason
        self.targets = {}
        for host in hosts:
            target = target_of(host.name, {key: host.data.get(key) for key in TARGET_KEYS})
            if target is not None:
                self.targets[host.name] = target
        self.new_keys = NewKeyWatch(self.targets.values())
        self.names = [host.name for host in hosts]
        self.waiting = deque(hosts)
        self.running: dict[str, RunningRead] = {}
        self.selector = selectors.DefaultSelector()
        self.done: dict[str, list[str] | Outcome] = {}
        self.fill()

    def fill(self) -> None:
        """Start waiting hosts while there are free slots."""
        while self.waiting and len(self.running) < self.parallel:
            host = self.waiting.popleft()
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                self.done[host.name] = Outcome(False, self.deadline_reason)
                continue
            try:
                argv = ssh_command(host, self.command, self.connect_timeout)
                process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE)
            except OSError as error:  # out of open files or processes: this host fails, the others go on
                self.done[host.name] = Outcome(False, could_not_start(self.what, error))
                continue
            read = RunningRead(process, now + self.bound)
            for descriptor in read.open:
                self.selector.register(descriptor, selectors.EVENT_READ, host.name)
            self.running[host.name] = read

    def pump(self, wait: float) -> None:
        """Read what the running hosts have written (waiting at most ``wait`` seconds for something), end the
        hosts whose ssh has closed its output or whose time is up, and start the next ones."""
        events = self.selector.select(max(0.0, wait)) if self.running else []
        for key, _ in events:
            name = key.data
            read = self.running[name]
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if chunk:
                read.output[key.fd].append(chunk)
            else:
                self.selector.unregister(key.fd)
                read.open.discard(key.fd)
        now = time.monotonic()
        for name, read in list(self.running.items()):
            if not read.open:
                self.finish(name, read, timed_out=False)
            elif now >= read.deadline:
                self.finish(name, read, timed_out=True)
        self.fill()

    def finish(self, name: str, read: RunningRead, timed_out: bool) -> None:
        process = read.process
        for descriptor in read.open:
            self.selector.unregister(descriptor)
        if not timed_out:
            try:  # its output is closed: ssh is exiting
                process.wait(timeout=max(0.1, read.deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        del self.running[name]
        if timed_out:
            self.done[name] = Outcome(False, f"facts timed out after {self.bound:g} s")
        else:
            self.done[name] = self.result(name, process.returncode, read.text(read.stdout), read.text(read.stderr))

    def result(self, name: str, returncode: int, out: bytes, err: bytes) -> list[str] | Outcome:
        stdout = out.decode(errors="replace").splitlines()
        stderr = err.decode(errors="replace").splitlines()
        if returncode == SSH_FAILED and not stdout:  # ssh's own failure: the command did not run
            target = self.targets.get(name)
            reason = connect_reason("\n".join(stderr), self.connect_timeout)
            return Outcome(False, with_key_advice(name, reason, target.file if target else None), stderr)
        if returncode != 0:
            return Outcome(False, f"could not read {self.what}: {(stderr or ['no output'])[-1]}", stderr)
        return stdout

    def results(self) -> dict[str, list[str] | Outcome]:
        """``command``'s stdout lines on every host, or an Outcome(False, reason) for a host that could not be
        read (ssh's own failure in a few words, a changed host key in the line that says how to accept it, the
        command's failure with its last stderr line, or ``facts timed out after N s``), in the hosts' order. New
        host keys recorded on the way are printed, one line each."""
        while self.running or self.waiting:
            nearest = min((read.deadline for read in self.running.values()), default=time.monotonic())
            self.pump(nearest - time.monotonic())
        self.selector.close()
        for line in self.new_keys.report(self.names):
            self.say(line)
        return {name: self.done[name] for name in self.names}


def start_reading(inventory: Any, names: list[str], *, what: str, command: str, parse: Callable[[list[str]], T],
                  fact: Callable[[], type], connect_timeout: int, bound: float, say: Callable[[str], None],
                  parallel: int | None = None, deadline: float | None = None, deadline_reason: str = ""
                  ) -> Callable[[], dict[str, T | Outcome]]:
    """The fact ``what`` on every named host, started now, at most ``parallel`` hosts at a time (None: what fits
    the open-file limit, archfleet.sync.scope.automatic_parallel), each within ``bound`` seconds of its start; the
    returned function waits for it. Over plain OpenSSH (``command``, its output read by ``parse``) when every host
    allows it, the first hosts' ssh processes run from the moment this returns; else through pyinfra (``fact()``
    gives the pyinfra fact of the same command and parser; imported only then), when the returned function is
    called. ``deadline`` (monotonic): a host not started by then fails with ``deadline_reason``."""
    hosts = [inventory.get_host(name) for name in names]
    parallel = parallel or automatic_parallel()
    if all_readable_over_openssh(hosts):
        reads = HostReads(hosts, command, what=what, connect_timeout=connect_timeout, bound=bound, say=say,
                          parallel=parallel, deadline=deadline, deadline_reason=deadline_reason)

        def parsed() -> dict[str, T | Outcome]:
            return {name: lines if isinstance(lines, Outcome) else parse(lines)
                    for name, lines in reads.results().items()}

        return parsed
    cooperative_process()
    return lambda: read_through_pyinfra(inventory, names, fact, connect_timeout, bound, parallel)


def cooperative_process() -> None:
    """Patch the standard library for gevent, as pyinfra's own CLI does, unless it is already: pyinfra reaches a
    host on a greenlet, and a socket of its (paramiko's) waits beside the others, and yields to a time bound, only
    in a patched process. The console patches every command at its start but ``sync`` and ``verify``, whose reads
    over OpenSSH need no patching; they patch here, once a host in scope needs pyinfra, before they start a
    thread (the registry's prefetch) or a process."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()


def read_through_pyinfra(inventory: Any, names: list[str], fact: Callable[[], type], connect_timeout: int,
                         bound: float, parallel: int) -> dict[str, Any]:
    from archfleet.sync.hosts import HostSession

    session = HostSession(inventory, connect_timeout, parallel)
    try:
        fact_class = fact()
        return session.each(names, "facts", bound, lambda host: session.fact(host, fact_class))
    finally:
        session.disconnect()


def read_everywhere(inventory: Any, names: list[str], *, what: str, command: str, parse: Callable[[list[str]], T],
                    fact: Callable[[], type], connect_timeout: int, bound: float,
                    say: Callable[[str], None], parallel: int | None = None) -> dict[str, T | Outcome]:
    """start_reading, waited for."""
    return start_reading(inventory, names, what=what, command=command, parse=parse, fact=fact,
                         connect_timeout=connect_timeout, bound=bound, say=say, parallel=parallel)()
