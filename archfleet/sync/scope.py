"""Which hosts a command reaches and within what bounds (its timeouts, how many hosts at once): the light first
step of ``sync``, ``verify`` and ``hosts``, before any host is read. Nothing here imports the registry client or the
planner, so the hosts' reads can start while those are still being imported (archfleet.sync.run)."""

from __future__ import annotations

import resource

from archfleet.errors import InputError, OperationFailed
from archfleet.fleet import Fleet
from archfleet.fleet.rollout import TimeoutsSpec
from archfleet.placement import Placement


def placement_of(fleet: Fleet) -> Placement:
    """The fleet's placement (every command that syncs needs an inventory)."""
    if fleet.placement is None:
        raise OperationFailed(f"{fleet.path}: no inventory: nothing to sync")
    return fleet.placement


def timeouts_of(fleet: Fleet) -> TimeoutsSpec:
    return fleet.timeouts


# Open files of this process that one host in flight costs at most, whatever the phase (measured: the reads by
# tests/benchmarks/wide_fleet.py, both by tests/test_parallel.py): a read's ssh process holds 2 (its stdout and
# stderr pipes), a pyinfra step over OpenSSH 4 (gevent's pipes to the ssh's stdin, stdout and stderr, and one more
# of gevent's; the master connection holds none of ours), a paramiko connection 1 (its socket, closed after each
# step when the scope is wider than the parallelism).
FILES_PER_HOST = 4
# What the process holds besides its hosts in flight, with room to spare: the interpreter and its imports, gevent's
# hub, the registry's HTTPS connections, known_hosts files being read, the pipes of an ssh being started (measured:
# about 10 with pyinfra imported, 20 with the registry's connections open).
FILES_RESERVED = 64
# The automatic parallelism's ceiling, however high the limit: beyond it a controller's CPU (each ssh's handshake)
# is the bound, not the hosts' latency, and each ssh client is a process of its own.
MOST_AUTOMATIC = 256


def open_file_limit() -> int:
    """The process's soft limit on open files (RLIMIT_NOFILE); an unlimited one counts as very large."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def automatic_parallel(file_limit: int | None = None) -> int:
    """Hosts at once that fit the open-file limit with room to spare: 48 under ``ulimit -n 256``, 240 under 1024,
    at most MOST_AUTOMATIC; never less than 1."""
    files = open_file_limit() if file_limit is None else file_limit
    return max(1, min(MOST_AUTOMATIC, (files - FILES_RESERVED) // FILES_PER_HOST))


def out_of_open_files(step: str) -> str:
    """The reason a host fails when this process ran out of open files (EMFILE) on its way: the others go on."""
    return f"{step}: out of open files (the limit is {open_file_limit()}): lower --parallel or raise `ulimit -n`"


def parallel_of(fleet: Fleet, requested: int | None = None) -> int:
    """How many hosts a command works on at once: ``--parallel`` (``requested``), else the fleet file's
    ``parallel:``, else what fits the open-file limit (automatic_parallel)."""
    return requested or fleet.parallel or automatic_parallel()


def hosts_in_scope(fleet: Fleet, limit: str | None) -> list[str]:
    """Every inventory host, or those of ``limit`` (host or group names, comma-separated)."""
    inventory = fleet.hosts
    assert inventory is not None  # every caller refuses a fleet file without `inventory:` first
    names = sorted(host.name for host in inventory)
    if not limit:
        return names
    chosen: set[str] = set()
    for word in (w.strip() for w in limit.split(",") if w.strip()):
        group = inventory.get_group(word, None)
        if word in names:
            chosen.add(word)
        elif group is not None:
            chosen.update(host.name for host in group)
        else:
            raise InputError(f"--limit: {word!r} is neither a host nor a group of {fleet.inventory}")
    return sorted(chosen)
