"""The `archfleet` console script. Hosts are reached in parallel through pyinfra's API in this process, on gevent
greenlets: the standard library is patched first, as pyinfra's own CLI does, before anything imports ssl or
socket. (Tests call ``archfleet.cli.main`` directly, unpatched.)

`archfleet sync`, `verify`, `logs` and `exec` are the exception: they reach every host over plain OpenSSH
processes (`logs` and `exec` refuse a host only pyinfra reaches), and sync imports pyinfra only when a host must
change; pyinfra's steps then run through archfleet's OpenSSH connector, whose ssh processes are gevent's own
(cooperative without patching). Patching at the start would cost every such command the import of gevent (about
0.1 s) and make each ssh a full fork instead of the standard library's vfork. When a host in their scope is one only
pyinfra reaches (paramiko, a password, ``@local``), they patch the process themselves before reading it
(archfleet.sync.read.cooperative_process)."""

from __future__ import annotations

import sys

UNPATCHED_COMMANDS = ("sync", "verify", "logs", "exec")


def main() -> int:
    first = next((word for word in sys.argv[1:] if not word.startswith("-")), None)
    if first not in UNPATCHED_COMMANDS:
        from gevent import monkey

        monkey.patch_all()
    from archfleet.cli import main as cli_main

    return cli_main()
