"""Benchmark: the lab and a service sync at N amd64 hosts. Prints figures; asserts nothing about time.

    .venv/bin/python -m tests.benchmarks.fleet_scale [--amd64 16]

Kept for its command line: it is `tests.benchmarks.sync_speed --hosts N --skip-ansible`, which times `lab up` to N
hosts, the host bootstrap, the first sync of N fresh hosts (next to N parallel pulls) and the no-op sync (next to
N parallel `ssh true`), and counts the SSH commands per host of a no-op sync, on the benchmark's own lab.
"""

from __future__ import annotations

import argparse
import sys

from tests.benchmarks import sync_speed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--amd64", type=int, default=16)
    args = parser.parse_args()
    return sync_speed.main(["--hosts", str(args.amd64), "--skip-ansible"])


if __name__ == "__main__":
    sys.exit(main())
