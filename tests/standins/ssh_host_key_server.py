"""A STAND-IN for a new instance's sshd, as far as its host key goes: a loopback listener that does SSH's key
exchange (paramiko's server side) with the host keys it is given, so that ``ssh-keyscan`` reads them as it reads a
real sshd's. It authenticates no one and runs nothing. Used by tests/spot/test_host_keys.py (the machines that run
the tests have no sshd; tests/lab/test_ec2_fleet.py checks the same path against a lab host's real sshd)."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

import paramiko


class HostKeyServer:
    """``with HostKeyServer(ed25519 private key file) as server:`` listens on 127.0.0.1:``server.port`` until the
    block ends."""

    def __init__(self, key_file: Path):
        logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)  # ssh-keyscan's asks for other types
        self.keys = [paramiko.Ed25519Key.from_private_key_file(str(key_file))]
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def __enter__(self) -> HostKeyServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.listener.close()
        self.thread.join(timeout=5)

    def serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.exchange, args=(connection,), daemon=True).start()

    def exchange(self, connection: socket.socket) -> None:
        transport = paramiko.Transport(connection)
        for key in self.keys:
            transport.add_server_key(key)
        try:
            transport.start_server(server=paramiko.ServerInterface())
            transport.accept(timeout=5)  # ssh-keyscan hangs up once it has the key
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            transport.close()
