"""Runs the `archfleet` command line many times quickly: imports it once, then forks a child per run.

    python -m tests.fleetfile.cli_zygote PARALLEL    # jobs on stdin, results on stdout, one JSON object a line

A job is ``{"id": N, "argv": [...], "env": {...}, "stdout": PATH, "stderr": PATH}``; its result is
``{"id": N, "exit": CODE}`` once the child has ended. Like the console script (archfleet/console.py) it patches
the standard library with gevent first; then the child runs ``archfleet.cli.main(argv)`` with that
environment and its stdout and stderr in those files: the console script's own code path after its imports (which
take about a second: the reason for this runner). An exception escaping ``main`` is printed as a traceback, as the
console script would, for the test to find.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
import traceback
from typing import Any

TIMEOUT_SECONDS = 120


def child(job: dict[str, Any]) -> None:
    """In the forked child; never returns."""
    code = 99
    try:
        os.dup2(os.open(job["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
        os.dup2(os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
        os.environ.clear()
        os.environ.update(job["env"])
        from archfleet.cli import main

        code = main(job["argv"])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # what the console script would print
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    parallel = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    from gevent import monkey

    monkey.patch_all()  # first, as the console script (archfleet/console.py) does
    from archfleet.cli import build_parser

    build_parser()  # every command module imported once, before any fork
    jobs = [json.loads(line) for line in sys.stdin if line.strip()]
    running: dict[int, tuple[dict[str, Any], float]] = {}
    while jobs or running:
        while jobs and len(running) < parallel:
            job = jobs.pop(0)
            pid = os.fork()
            if pid == 0:
                child(job)
            running[pid] = (job, time.monotonic())
        for pid, (job, started) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                if time.monotonic() - started > TIMEOUT_SECONDS:
                    os.kill(pid, signal.SIGKILL)
                continue
            del running[pid]
            print(json.dumps({"id": job["id"], "exit": os.waitstatus_to_exitcode(status)}), flush=True)
        time.sleep(0.005)


if __name__ == "__main__":
    main()
