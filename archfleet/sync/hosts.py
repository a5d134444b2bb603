"""Running steps on many hosts at once through pyinfra's API, in this process, each under a time bound.

pyinfra's own SSH connector carries every command; its facts' pure ``process()`` reads the output. Hosts run
in parallel (gevent greenlets, as pyinfra's CLI runs them: the process is monkey-patched by ``archfleet.cli``), at
most ``parallel`` hosts at a time across every step of the session (archfleet.sync.scope.parallel_of), and each
step on each host is bounded from the moment the host gets its slot: a host that times out fails alone (``connect
timed out after 10 s``), the others finish; a host waiting for a slot is not running out of time. Nothing here
decides anything.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import TYPE_CHECKING, Any, TypeVar

import gevent
import gevent.lock
from pyinfra.api import Config, FactBase, QuoteString, State, StringCommand
from pyinfra.api.exceptions import ConnectError

from archfleet.facts.service_reads import CREDENTIALS_DIR, FILES_ROOT, password_path
from archfleet.inventory_file import pyinfra_inventory
from archfleet.known_hosts import NewKeyWatch, inventory_targets
from archfleet.run import say
from archfleet.services.desired import ManagedFile
from archfleet.sync.outcome import Outcome, StepFailed, connect_error_reason, with_key_advice
from archfleet.sync.scope import automatic_parallel, out_of_open_files
from archfleet.tasks import docker_commands
from archfleet.tasks.service_commands import FAILURE_PREFIX, failure_reason

if TYPE_CHECKING:
    from pyinfra.api import Host, Inventory

T = TypeVar("T")


class Skipped:
    """The value ``HostSession.spawn`` gives a host whose ``before`` held it back: its action never ran."""


SKIPPED = Skipped()


def use_openssh(inventory: Inventory) -> None:
    """Hosts of pyinfra's default SSH connector (paramiko) go over the system's OpenSSH client instead, one
    multiplexed connection each (archfleet.connectors.openssh), unless their data says ``archfleet_ssh: paramiko``,
    they log in with a password (OpenSSH runs in batch mode here) or there is no ``ssh`` program."""
    if shutil.which("ssh") is None:
        return
    from pyinfra.connectors.ssh import SSHConnector

    from archfleet.connectors.openssh import OpenSSHConnector

    for host in inventory:
        needs_paramiko = host.data.get("ssh_password") or host.data.get("ssh_key_password")
        if host.connector_cls is SSHConnector and host.data.get("archfleet_ssh") != "paramiko" and not needs_paramiko:
            host.connector_cls = OpenSSHConnector


class HostSession:
    """The inventory's hosts in one pyinfra State, connected on first use."""

    def __init__(self, inventory: Any, connect_timeout: int, parallel: int | None = None):
        """``inventory``: the fleet's (archfleet.inventory_file.HostInventory) or pyinfra's own; ``parallel``:
        hosts at once (None: what fits the open-file limit)."""
        for name in ("pyinfra", "paramiko"):  # their own log lines would break the one-line-per-host output
            logging.getLogger(name).setLevel(logging.CRITICAL)
        inventory = pyinfra_inventory(inventory)
        self.inventory = inventory
        self.connect_timeout = connect_timeout
        use_openssh(inventory)
        self.state = State(inventory, Config(CONNECT_TIMEOUT=connect_timeout))
        self.hosts: dict[str, Host] = {host.name: host for host in inventory}
        self.key_targets = inventory_targets(inventory)
        self.new_keys = NewKeyWatch(self.key_targets.values())  # hosts met for the first time
        self.parallel = max(1, parallel or automatic_parallel())
        self.slots = gevent.lock.BoundedSemaphore(self.parallel)
        # a connection that holds a socket of ours (paramiko's) between steps is closed after each step when more
        # hosts than slots could be connected at once; OpenSSH's master connections hold none of ours
        self.close_between_steps = len(self.hosts) > self.parallel

    @staticmethod
    def sudo(host: Host) -> dict[str, Any]:
        """pyinfra's ``_sudo`` for commands and uploads, from the host data (the fleet file's ``ssh:`` sets it
        for a user who is not root); operations of a deploy read it from the host data themselves."""
        return {"_sudo": True} if host.data.get("_sudo") else {}

    def outcome_reason(self, name: str, reason: str) -> str:
        target = self.key_targets.get(name)
        return with_key_advice(name, reason, target.file if target else None)

    def each(self, names: Iterable[str], step: str, timeout: float,
             action: Callable[[Host], T]) -> dict[str, T | Outcome]:
        """``action(host)`` on every named host in parallel; a host whose action raised or ran out of time gets
        an Outcome(False, reason) instead of a value."""
        return self.collect(self.spawn(names, step, timeout, action))

    def spawn(self, names: Iterable[str], step: str, timeout: float, action: Callable[[Host], T],
              before: Callable[[str], bool] | None = None) -> dict[str, gevent.Greenlet]:
        """``action(host)`` started on every named host, at most ``parallel`` at a time, each bounded by
        ``timeout`` from when it gets its slot: a host whose action raised or ran out of time ends with an
        Outcome(False, reason). ``before(name)`` is waited for first, outside the bound and without a slot; a host
        for which it returns False is skipped (its value is SKIPPED)."""
        def guarded(host: Host) -> T | Outcome | Skipped:
            if before is not None and not before(host.name):
                return SKIPPED
            with self.slots:
                try:
                    return self.bounded(host, step, timeout, action)
                finally:
                    if self.close_between_steps:
                        self.release(host)

        return {name: gevent.spawn(guarded, self.hosts[name]) for name in names}

    def bounded(self, host: Host, step: str, timeout: float, action: Callable[[Host], T]) -> T | Outcome:
        """``action(host)`` within ``timeout``; whatever it raises becomes an Outcome(False, reason)."""
        try:
            with gevent.Timeout(timeout, StepFailed(f"{step} timed out after {timeout:g} s")):
                return action(host)
        except StepFailed as error:
            return Outcome(False, error.reason, error.stderr)
        except ConnectError as error:
            return Outcome(False, connect_error_reason(error, self.connect_timeout))
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE):  # out of open files: this host fails, the others go on
                return Outcome(False, out_of_open_files(step))
            return Outcome(False, f"{step}: connection lost ({error or type(error).__name__})")
        except EOFError as error:
            return Outcome(False, f"{step}: connection lost ({error or type(error).__name__})")
        except Exception as error:  # paramiko raises its own; one line per host, never a traceback
            return Outcome(False, f"{step}: {type(error).__name__}: {error}")

    def release(self, host: Host) -> None:
        """Close a connection that holds a socket of this process (paramiko's); the next step reconnects."""
        from archfleet.connectors.openssh import OpenSSHConnector

        if host.connected and not isinstance(host.connector, OpenSSHConnector):
            with contextlib.suppress(Exception):
                host.disconnect()

    def collect(self, greenlets: dict[str, gevent.Greenlet]) -> dict[str, Any]:
        """Every greenlet of ``spawn`` finished: its value, a failure's reason with the advice on host keys."""
        gevent.joinall(list(greenlets.values()))
        for line in self.new_keys.report(list(greenlets)):
            say(line)
        return {name: self.outcome_of(name, greenlet.value) for name, greenlet in greenlets.items()}

    def outcome_of(self, name: str, value: T) -> T | Outcome:
        if isinstance(value, Outcome) and not value.ok:
            return Outcome(False, self.outcome_reason(name, value.reason), value.stderr)
        return value

    def connect(self, host: Host) -> None:
        if not host.connected:
            with gevent.Timeout(self.connect_timeout, StepFailed(f"connect timed out after {self.connect_timeout} s")):
                host.connect(show_errors=False, raise_exceptions=True)

    def fact(self, host: Host, fact: type[FactBase[Any]]) -> Any:
        """One fact, read with one command (its pure ``process()`` parses the output)."""
        self.connect(host)
        instance = fact()
        ok, output = host.run_shell_command(StringCommand(instance.command()), print_output=False,
                                            **self.sudo(host))
        if not ok:
            raise StepFailed(f"could not read {fact.__name__}: {(output.stderr_lines or ['no output'])[-1]}")
        return instance.process(output.stdout_lines)

    def run(self, host: Host, command: StringCommand, default_reason: str) -> list[str]:
        """Run one step script (its stdout lines); a failure raises StepFailed with the script's own reason."""
        self.connect(host)
        ok, output = host.run_shell_command(command, print_output=False, **self.sudo(host))
        if not ok:
            raise StepFailed(failure_reason(output.stderr_lines, default_reason), output.stderr_lines)
        return list(output.stdout_lines)

    def upload(self, host: Host, files: Iterable[ManagedFile], then: StringCommand | None = None,
               then_reason: str = "") -> list[str]:
        """Put files in their content-addressed, root-only directories, then give them their owner and mode;
        ``then`` (a pull) runs in the same command as the owner and mode, to save the host a round trip (its stdout
        lines are returned)."""
        pending = list(files)
        if not pending:
            return self.run(host, then, then_reason) if then is not None else []
        self.connect(host)
        directories = sorted({f.host_path.rsplit("/", 1)[0] for f in pending})
        parents = sorted({d.rsplit("/", 1)[0] for d in directories})
        self.run(host, docker_commands.private_directory(FILES_ROOT, *parents, *directories),
                 f"could not create the directories under {FILES_ROOT}")
        for managed in pending:
            if not host.put_file(BytesIO(managed.content), managed.host_path, print_output=False,
                                 **self.sudo(host)):
                raise StepFailed(f"could not upload {managed.host_path}")
        own = docker_commands.own_files([(f.owner, f.mode, f.host_path) for f in pending])
        reason = "could not set the owner and mode of the uploaded files"
        if then is None:
            return self.run(host, own, reason)
        return self.run(host, StringCommand(own, "||", "{", "echo", QuoteString(FAILURE_PREFIX + reason), ">&2;",
                                            "false;", "}", "&&", then), then_reason)

    def login(self, host: Host, logins: Iterable[Any]) -> None:
        """Renew registry logins (archfleet.credentials.RegistryLogin): the password in a root-only file, fed to
        `docker login` on stdin."""
        for login in logins:
            path = password_path(login.registry)
            self.run(host, docker_commands.private_directory(CREDENTIALS_DIR), f"could not create {CREDENTIALS_DIR}")
            if not host.put_file(BytesIO(login.credentials.secret.encode()), path, print_output=False,
                                 **self.sudo(host)):
                raise StepFailed(f"could not upload the password for {login.registry}")
            self.run(host, docker_commands.own_files([("0:0", "0600", path)]), "could not protect the password")
            self.run(host, docker_commands.login(login.registry, login.credentials.username, path),
                     f"docker login to {login.registry} failed")

    def disconnect(self) -> None:
        """Close every connection, all at once (closing what is already lost must not hide the results)."""
        def close(host: Host) -> None:
            with contextlib.suppress(Exception):
                host.disconnect()

        gevent.joinall([gevent.spawn(close, host) for host in self.hosts.values() if host.connected], timeout=30)
