"""A pyinfra connector that carries commands over the system's OpenSSH client, one multiplexed connection per host.

pyinfra's own ``@ssh`` connector is paramiko: key exchange and ciphers in Python, a few tens of milliseconds of CPU
per host. OpenSSH does the same in C, honours ``~/.ssh/config``, and multiplexes every later command of a run over
the first connection (``ControlMaster``), so a host costs one handshake per run. It reads the same host data as
pyinfra's ``@ssh`` connector (``ssh_hostname``, ``ssh_port``, ``ssh_user``, ``ssh_key``, ``ssh_known_hosts_file``,
``ssh_strict_host_key_checking``, ``ssh_config_file``), so an inventory works with either.

    pyinfra @openssh/web-1 fact server.Arch           # registered as the `openssh` connector (pyproject.toml)

`archfleet sync` and `archfleet verify` use it for every host of the default ``@ssh`` kind (host data
``archfleet_ssh: paramiko`` keeps pyinfra's own). Host keys are checked as configured (``StrictHostKeyChecking``);
nothing is ever added to a known_hosts file silently unless the host data says ``accept-new``. Commands, uploads and
downloads go through sudo when the caller passes pyinfra's ``_sudo`` (as operations do from the host data).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from io import IOBase
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import gevent.subprocess
from pyinfra.api import QuoteString, StringCommand
from pyinfra.connectors.base import BaseConnector, DataMeta
from pyinfra.connectors.util import (
    CommandOutput,
    OutputLine,
    execute_command_with_sudo_retry,
    make_unix_command_for_host,
)

from archfleet.errors import ArchfleetError, InputError
from archfleet.ssh import ALIVE_COUNT, ALIVE_INTERVAL, SSH_FAILED, connect_failure, ssh_destination, ssh_options

if TYPE_CHECKING:
    from pyinfra.api import Host, State


class OpenSSHConnectError(ArchfleetError):
    pass


CONNECTOR_DATA = {
    "ssh_hostname": DataMeta("SSH hostname"),
    "ssh_port": DataMeta("SSH port"),
    "ssh_user": DataMeta("SSH user"),
    "ssh_key": DataMeta("SSH key filename"),
    "ssh_known_hosts_file": DataMeta("known_hosts file"),
    "ssh_strict_host_key_checking": DataMeta("StrictHostKeyChecking", "yes"),
    "ssh_config_file": DataMeta("ssh_config file"),
    "ssh_connect_timeout": DataMeta("ConnectTimeout in seconds"),
}


class OpenSSHConnector(BaseConnector):
    """Commands over ``ssh``; files over ``ssh ... 'cat > FILE'`` (stdin), so no sftp subsystem is needed."""

    handles_execution = True
    data_meta = CONNECTOR_DATA
    _control_dir: str | None = None

    def __init__(self, state: State, host: Host):
        super().__init__(state, host)
        self.data: dict[str, Any] = {key: host.data.get(key) for key in CONNECTOR_DATA}

    @staticmethod
    def make_names_data(name: str) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
        yield f"@openssh/{name}", {"ssh_hostname": name}, []

    @classmethod
    def control_dir(cls) -> str:
        """One private folder for every control socket of this process (removed when its hosts disconnect)."""
        if cls._control_dir is None or not os.path.isdir(cls._control_dir):
            cls._control_dir = tempfile.mkdtemp(prefix="archfleet-ssh-")
        return cls._control_dir

    @property
    def destination(self) -> str:
        """``ssh_hostname``, else the host's name: checked as a host name or address (archfleet.ssh.host_address),
        so nothing ssh would read as an option reaches its argv."""
        from pyinfra.api.exceptions import ConnectError

        try:
            return ssh_destination(self.data, self.host.name.split("/", 1)[-1])
        except InputError as error:
            raise ConnectError(str(error)) from None

    @property
    def control_path(self) -> str:
        return str(Path(self.control_dir()) / f"{abs(hash((self.host.name, self.destination))):x}")

    def options(self) -> list[str]:
        timeout = int(getattr(self.state.config, "CONNECT_TIMEOUT", 10) or 10)
        return ssh_options(self.data, self.control_path, timeout)

    def argv(self, *remote: str) -> list[str]:
        """A command over the host's master connection; the first command opens it (it stays in the background,
        its standard streams on /dev/null, until disconnect, or 60 s idle if archfleet was killed), so a host
        costs one handshake per run."""
        destination = self.destination
        return ["ssh", *self.options(), "-o", "ControlMaster=auto", "-o", "ControlPersist=60", destination,
                "--", *remote]

    def _run(self, remote: str, stdin: bytes | None = None,
             timeout: float | None = None) -> tuple[int, list[str], list[str]]:
        started = time.monotonic()
        # gevent's own Popen: other hosts' greenlets run while this one waits, patched process or not
        process = gevent.subprocess.Popen(self.argv(remote), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE)
        try:
            out, err = process.communicate(stdin, timeout=timeout)
        finally:
            if process.poll() is None:  # a time-out (ours or the caller's) must not leave ssh behind
                process.kill()
                process.wait()
        errors = err.decode(errors="replace").splitlines()
        if process.returncode == SSH_FAILED and not out:  # ssh's own failure (the remote command did not run)
            from pyinfra.api.exceptions import ConnectError

            reason = connect_failure("\n".join(errors))
            if reason == "ssh failed" and time.monotonic() - started >= ALIVE_INTERVAL * (ALIVE_COUNT - 1):
                # the master gave up on a host that stopped answering (its own words went to /dev/null)
                reason = f"timed out after {ALIVE_INTERVAL * ALIVE_COUNT} s (the host stopped answering)"
            raise ConnectError(reason)
        return process.returncode, out.decode(errors="replace").splitlines(), errors

    def connect(self) -> None:
        """Nothing to do yet: the first command opens the connection (one process, one handshake), and a failure
        to connect then is a ConnectError with OpenSSH's reason."""

    def disconnect(self) -> None:
        from pyinfra.api.exceptions import ConnectError

        try:
            destination = self.destination
        except ConnectError:
            destination = None  # never connected
        if destination is not None:
            subprocess.run(["ssh", "-o", f"ControlPath={self.control_path}", "-O", "exit", "--", destination],
                           capture_output=True, check=False, timeout=10)
        directory = self._control_dir
        if directory and os.path.isdir(directory) and not os.listdir(directory):
            shutil.rmtree(directory, ignore_errors=True)

    def run_shell_command(self, command: StringCommand, print_output: bool = False, print_input: bool = False,
                          **arguments: Any) -> tuple[bool, CommandOutput]:
        arguments.pop("_get_pty", False)
        timeout = arguments.pop("_timeout", None)
        stdin = arguments.pop("_stdin", None)
        success_codes = arguments.pop("_success_exit_codes", None)

        def execute() -> tuple[int, CommandOutput]:
            unix_command = make_unix_command_for_host(self.state, self.host, command, **arguments)
            data = stdin.encode() if isinstance(stdin, str) else stdin
            code, out, err = self._run(unix_command.get_raw_value(), data, timeout)
            lines = [OutputLine("stdout", line) for line in out] + [OutputLine("stderr", line) for line in err]
            return code, CommandOutput(lines)

        code, output = execute_command_with_sudo_retry(self.host, cast(Any, arguments), execute)
        return (code in success_codes if success_codes else code == 0), output

    def put_file(self, filename_or_io: str | IOBase, remote_filename: str, remote_temp_filename: str | None = None,
                 print_output: bool = False, print_input: bool = False, **arguments: Any) -> bool:
        """The content goes on stdin to ``cat`` on the host, written to a temporary name then moved into place."""
        if isinstance(filename_or_io, str):
            content = Path(filename_or_io).read_bytes()
        else:
            raw = filename_or_io.read()
            content = raw.encode() if isinstance(raw, str) else raw
        temporary = f"{remote_filename}.archfleet-upload"
        script = (f"umask 077 && cat > {shlex.quote(temporary)} && "
                  f"mv -f {shlex.quote(temporary)} {shlex.quote(remote_filename)}")
        ok, _ = self.run_shell_command(StringCommand("sh", "-c", shlex.quote(script)), _stdin=content, **arguments)
        return ok

    def get_file(self, remote_filename: str, filename_or_io: str | IOBase, remote_temp_filename: str | None = None,
                 print_output: bool = False, print_input: bool = False, **arguments: Any) -> bool:
        ok, output = self.run_shell_command(StringCommand("cat", QuoteString(remote_filename)), **arguments)
        if not ok:
            return False
        out = output.stdout_lines
        text = "\n".join(out) + ("\n" if out else "")
        if isinstance(filename_or_io, str):
            Path(filename_or_io).write_text(text)
        else:
            filename_or_io.write(text.encode() if "b" in getattr(filename_or_io, "mode", "b") else text)
        return True
