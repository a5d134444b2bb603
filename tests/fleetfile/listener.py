"""A TCP listener on 127.0.0.1 that records every connection it accepts, one line per connection in LOGFILE.

    python -m tests.fleetfile.listener LOGFILE      # prints its port on the first line of stdout

A process of its own (not a thread of the test) so that the test process stays single-threaded and nothing the
loader imports (pyinfra's gevent patching) changes how it accepts.
"""

from __future__ import annotations

import socket
import sys


def main() -> None:
    log = sys.argv[1]
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    print(server.getsockname()[1], flush=True)
    while True:
        connection, peer = server.accept()
        with open(log, "a") as handle:
            handle.write(f"{peer[0]}:{peer[1]}\n")
        connection.close()


if __name__ == "__main__":
    main()
