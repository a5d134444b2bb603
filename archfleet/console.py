"""The `archfleet` console script. Hosts are reached in parallel through pyinfra's API in this process, on gevent
greenlets: the standard library is patched first, as pyinfra's own CLI does, before anything imports ssl or
socket. (Tests call ``archfleet.cli.main`` directly, unpatched.)"""

from __future__ import annotations


def main() -> int:
    from gevent import monkey

    monkey.patch_all()
    from archfleet.cli import main as cli_main

    return cli_main()
