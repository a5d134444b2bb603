"""Reading every host with one command over the system's OpenSSH client, without pyinfra: what ``archfleet sync``
does first, and all a no-op sync does on a host.

Each host gets exactly one ``ssh HOST -- sh -c COMMAND`` (through ``sudo -H -n`` when its data says ``_sudo``),
started all at once and bounded together: a host that does not answer in time fails alone, the others are read.
The ssh options come from the host's data exactly as archfleet's OpenSSH connector makes them
(``archfleet.ssh.ssh_options``: key, port, user, known_hosts and its checking), without a master connection: a
host that must change is reached again through pyinfra, and one that need not (the usual case) costs one
handshake, as ``ssh HOST true`` does. A host only pyinfra can reach (a connector such as ``@local``, a password,
``archfleet_ssh: paramiko``) or a machine without ``ssh`` is not readable here (``readable_over_openssh``): such
an inventory is read through pyinfra instead, in parallel and bounded, in a process patched for gevent
(``cooperative_process``).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from archfleet.known_hosts import NewKeyWatch, target_of
from archfleet.ssh import SSH_FAILED, ssh_destination, ssh_options
from archfleet.sync.outcome import Outcome, connect_reason, with_key_advice

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


class HostReads:
    """``command`` started on every host at once (one ``ssh`` each); ``results()`` waits for them, within
    ``bound`` seconds of the start. Starting returns at once, so the caller can do its own work (imports, the
    registry) while the hosts answer."""

    def __init__(self, hosts: list[Any], command: str, *, what: str, connect_timeout: int, bound: float,
                 say: Callable[[str], None]):
        self.what, self.connect_timeout, self.bound, self.say = what, connect_timeout, bound, say
        self.targets = {}
        for host in hosts:
            target = target_of(host.name, {key: host.data.get(key) for key in TARGET_KEYS})
            if target is not None:
                self.targets[host.name] = target
        self.new_keys = NewKeyWatch(self.targets.values())
        self.started = time.monotonic()
        self.processes = {
            host.name: subprocess.Popen(ssh_command(host, command, connect_timeout), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for host in hosts}

    def results(self) -> dict[str, list[str] | Outcome]:
        """``command``'s stdout lines on every host, or an Outcome(False, reason) for a host that could not be
        read (ssh's own failure in a few words, a changed host key in the line that says how to accept it, the
        command's failure with its last stderr line, or ``facts timed out after N s``). New host keys recorded on
        the way are printed, one line each."""
        results: dict[str, list[str] | Outcome] = {}
        for name, process in self.processes.items():
            try:
                out, err = process.communicate(timeout=max(0.0, self.started + self.bound - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                results[name] = Outcome(False, f"facts timed out after {self.bound:g} s")
                continue
            stdout = out.decode(errors="replace").splitlines()
            stderr = err.decode(errors="replace").splitlines()
            if process.returncode == SSH_FAILED and not stdout:  # ssh's own failure: the command did not run
                target = self.targets.get(name)
                reason = connect_reason("\n".join(stderr), self.connect_timeout)
                results[name] = Outcome(False, with_key_advice(name, reason, target.file if target else None),
                                        stderr)
            elif process.returncode != 0:
                results[name] = Outcome(False, f"could not read {self.what}: {(stderr or ['no output'])[-1]}",
                                        stderr)
            else:
                results[name] = stdout
        for line in self.new_keys.report(list(self.processes)):
            self.say(line)
        return results


def start_reading(inventory: Any, names: list[str], *, what: str, command: str, parse: Callable[[list[str]], T],
                  fact: Callable[[], type], connect_timeout: int, bound: float, say: Callable[[str], None]
                  ) -> Callable[[], dict[str, T | Outcome]]:
    """The fact ``what`` on every named host, started now; the returned function waits for it. Over plain
    OpenSSH (``command``, its output read by ``parse``) when every host allows it, the hosts' ssh processes run
    from the moment this returns; else through pyinfra (``fact()`` gives the pyinfra fact of the same command and
    parser; imported only then), when the returned function is called."""
    hosts = [inventory.get_host(name) for name in names]
    if all_readable_over_openssh(hosts):
        reads = HostReads(hosts, command, what=what, connect_timeout=connect_timeout, bound=bound, say=say)

        def parsed() -> dict[str, T | Outcome]:
            return {name: lines if isinstance(lines, Outcome) else parse(lines)
                    for name, lines in reads.results().items()}

        return parsed
    cooperative_process()
    return lambda: read_through_pyinfra(inventory, names, fact, connect_timeout, bound)


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
                         bound: float) -> dict[str, Any]:
    from archfleet.sync.hosts import HostSession

    session = HostSession(inventory, connect_timeout)
    try:
        fact_class = fact()
        return session.each(names, "facts", bound, lambda host: session.fact(host, fact_class))
    finally:
        session.disconnect()


def read_everywhere(inventory: Any, names: list[str], *, what: str, command: str, parse: Callable[[list[str]], T],
                    fact: Callable[[], type], connect_timeout: int, bound: float,
                    say: Callable[[str], None]) -> dict[str, T | Outcome]:
    """start_reading, waited for."""
    return start_reading(inventory, names, what=what, command=command, parse=parse, fact=fact,
                         connect_timeout=connect_timeout, bound=bound, say=say)()
