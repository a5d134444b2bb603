"""Benchmark: a wide fleet from a controller whose open-file limit is 256 (issue 31). Prints a table; asserts
nothing about time.

    .venv/bin/python -m tests.benchmarks.wide_fleet [--hosts 100,300,1000] [--runs 1] [--file-limit 256]
        [--parallel N] [--json-out FILE]

On the lab the environment names (ARCHFLEET_LAB_NETWORK / _SUBNET / _DIR; `lab up` first): N inventory names for the
lab's amd64 hosts, spread evenly (tests/lab/test_wide_fleet.py's inventory: every name a host to archfleet, one
container declared for all alike, each host's sshd told to accept many connections at once). For each N, in
``--runs`` interleaved rounds, each run in a child whose soft open-file limit is ``--file-limit``:

- the floor: N ``ssh HOST true`` with the very options archfleet's read gives each host (the lab key, known_hosts,
  StrictHostKeyChecking=yes, the connect timeout), at most P at a time (``xargs -P P``), P being archfleet's
  parallelism for the same limit (or ``--parallel``);
- ``archfleet sync`` (a no-op: every name reads "no changes") and ``archfleet sync --dry``.

Per archfleet run: wall time, controller CPU (user + system of archfleet and every ssh it ran, from wait4), peak RSS
of the archfleet process, peak open files of the archfleet process and most ssh processes in flight (sampled every
10 ms from /proc), the open files one host in flight costs (the slope of open files over ssh processes in flight,
fitted over the samples) and the memory one host in flight costs (the proportional set size of its ssh process,
sampled every 0.1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from archfleet.fleet.rollout import TimeoutsSpec
from archfleet.inventory_file import load_inventory
from archfleet.lab.state import LabHost, LabState, load, state_dir
from archfleet.sync.read import ssh_command
from archfleet.sync.scope import automatic_parallel
from tests.lab.support import BIN, PROJECT, fleet_header, on_host, remove_every_service
from tests.lab.test_wide_fleet import SERVICE, SSHD_DEFAULT, SSHD_WIDE, write_inventory

ARCHFLEET = str(BIN / "archfleet")


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def lowered(files: int):  # type: ignore[no-untyped-def]
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (files, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    return lower


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def pss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Sampled:
    """What the sampler saw of one archfleet process."""

    files: list[tuple[int, int]] = field(default_factory=list)  # (open files, ssh processes in flight)
    ssh_pss_kib: list[int] = field(default_factory=list)  # one ssh process's PSS, each time one was sampled

    @property
    def peak_files(self) -> int:
        return max((f for f, _ in self.files), default=0)

    @property
    def most_in_flight(self) -> int:
        return max((n for _, n in self.files), default=0)

    @property
    def files_per_host(self) -> float | None:
        """The slope of open files over hosts in flight, fitted over the samples with any in flight (the ramp up
        as the first hosts start, the ramp down as the last end)."""
        busy = [(n, f) for f, n in self.files if n > 0]
        if len({n for n, _ in busy}) < 2:
            return None
        slope, _ = statistics.linear_regression([n for n, _ in busy], [f for _, f in busy])
        return slope


def sample(pid: int, sampled: Sampled, stop: threading.Event) -> None:
    tick = 0
    while not stop.is_set():
        kids = children(pid)
        sampled.files.append((open_files(pid), len(kids)))
        if tick % 10 == 0:
            for kid in kids[:8]:
                value = pss_kib(kid)
                if value:
                    sampled.ssh_pss_kib.append(value)
        tick += 1
        time.sleep(0.01)


@dataclass
class Run:
    wall: float
    cpu: float  # user + system, the process and the children it waited for
    peak_rss_mb: float
    peak_files: int
    most_in_flight: int
    files_per_host: float | None
    ssh_mb_per_host: float | None


def measured(argv: list[str], file_limit: int, expect: int) -> Run:
    """Run archfleet ``argv`` under the file limit; every one of ``expect`` hosts must say "no changes"."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        process = subprocess.Popen(argv, cwd=PROJECT, stdout=out, stderr=err, preexec_fn=lowered(file_limit))
        sampled, stop = Sampled(), threading.Event()
        sampler = threading.Thread(target=sample, args=(process.pid, sampled, stop))
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        stop.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    statuses = [line.split("\t")[2] for line in stdout.splitlines() if line.startswith("sync\t")]
    if process.returncode != 0 or len(statuses) != expect or set(statuses) != {"no changes"}:
        raise SystemExit(f"bench: `{' '.join(argv[1:3])}` of {expect} hosts was no no-op (exit "
                         f"{process.returncode}):\n{stdout[-2000:]}{stderr[-3000:]}")
    pss = sampled.ssh_pss_kib
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, sampled.peak_files,
               sampled.most_in_flight, sampled.files_per_host, statistics.median(pss) / 1024 if pss else None)


def floor(inventory: Path, parallel: int) -> tuple[float, float]:
    """`ssh HOST true` for every host of the inventory, with the very options archfleet's read gives it
    (archfleet.sync.read.ssh_command, the default connect timeout), at most ``parallel`` at a time: wall and CPU."""
    hosts = load_inventory(inventory)
    argvs = [ssh_command(host, "true", int(TimeoutsSpec().connect)) for host in hosts]
    prefix = argvs[0][:-3]  # the options, without the destination, -- and the command
    assert all(argv[:-3] == prefix for argv in argvs)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as targets:
        targets.write("".join(f"{argv[-3]}\n" for argv in argvs))
        targets.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        result = subprocess.run(["xargs", "-a", targets.name, "-P", str(parallel), "-I", "{}", *prefix, "{}", "--",
                                 argvs[0][-1]], capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"bench: the floor failed: {result.stderr[-2000:]}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


@dataclass
class Row:
    hosts: int
    parallel: int
    floor_runs: list[float] = field(default_factory=list)
    floor_cpu: list[float] = field(default_factory=list)
    sync: list[Run] = field(default_factory=list)
    dry: list[Run] = field(default_factory=list)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def print_table(rows: list[Row], out=sys.stdout) -> None:  # type: ignore[no-untyped-def]
    header = ["hosts", "parallel", "run", "floor s", "archfleet s", "ratio", "floor CPU s", "CPU s", "peak RSS MB",
              "peak files", "in flight", "files/host", "ssh MB/host"]
    lines = []
    for row in rows:
        for label, runs in (("sync", row.sync), ("sync --dry", row.dry)):
            if not runs:
                continue
            wall = median([r.wall for r in runs])
            ratios = [r.wall / f for r, f in zip(runs, row.floor_runs, strict=False)]
            per_host = [r.files_per_host for r in runs if r.files_per_host is not None]
            mb = [r.ssh_mb_per_host for r in runs if r.ssh_mb_per_host is not None]
            lines.append([str(row.hosts), str(row.parallel), label, f"{median(row.floor_runs):.1f}", f"{wall:.1f}",
                          f"{median(ratios):.2f}x", f"{median(row.floor_cpu):.1f}",
                          f"{median([r.cpu for r in runs]):.1f}", f"{max(r.peak_rss_mb for r in runs):.0f}",
                          str(max(r.peak_files for r in runs)), str(max(r.most_in_flight for r in runs)),
                          f"{max(per_host):.1f}" if per_host else "-", f"{median(mb):.1f}" if mb else "-"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)] if lines else []
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)), file=out)
    for line in lines:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)), file=out)
    print("times and CPU: medians of the runs (CPU: the process and every ssh it ran); ratio: median of archfleet / "
          "floor within each round; peak RSS: the archfleet process; peak files and in flight: its open files and "
          "its ssh processes, sampled every 10 ms; files/host: the slope of open files over hosts in flight; "
          "ssh MB/host: the median PSS of an ssh process in flight", file=out)


def host_counts(text: str) -> list[int]:
    return sorted({int(part) for part in text.split(",")})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--hosts", type=host_counts, default=[100, 300, 1000])
    parser.add_argument("--runs", type=int, default=1, help="interleaved rounds per host count (default 1)")
    parser.add_argument("--file-limit", type=int, default=256, help="archfleet's soft open-file limit (256)")
    parser.add_argument("--parallel", type=int, help="archfleet's --parallel (default: its automatic value)")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    state = load()
    hosts = state.hosts_of("amd64")
    say(f"lab {os.environ.get('ARCHFLEET_LAB_NETWORK', 'default')}: names for {', '.join(h.name for h in hosts)}")
    for host in hosts:
        assert on_host(host, SSHD_WIDE).returncode == 0
    parallel = args.parallel or automatic_parallel(args.file_limit)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=state_dir()) as work:
        try:
            measure_all(args, state, hosts, parallel, Path(work), rows)
        finally:
            remove_every_service(Path(work))
            for host in hosts:
                on_host(host, SSHD_DEFAULT)
    print_table(rows)
    return 0


def measure_all(args: argparse.Namespace, state: LabState, hosts: list[LabHost], parallel: int, directory: Path,
                rows: list[Row]) -> None:
    header = fleet_header().replace(f"inventory: {PROJECT / 'inventories' / 'lab.py'}\n", "")
    one = directory / "one.yaml"
    for host in hosts:
        write_inventory(directory / "one.py", state, host, [host.name])
        one.write_text(header + "inventory: one.py\n" + SERVICE)
        for step in (["images", "build"], ["sync"]):  # the container, under the host's own name (untimed)
            subprocess.run([ARCHFLEET, *step, "-f", str(one)], cwd=PROJECT, check=True, capture_output=True)
    for count in args.hosts:
        names = [f"wide-{i:04d}" for i in range(1, count + 1)]
        inventory = directory / "wide.py"
        entries = []
        for index, host in enumerate(hosts):
            part = names[index::len(hosts)]
            write_inventory(inventory, state, host, part)
            entries.append(inventory.read_text().replace("wide = ", f"wide_{index} = "))
        inventory.write_text("".join(entries) + "wide = " + " + ".join(f"wide_{i}" for i in range(len(hosts)))
                             + "\n")
        fleet = directory / "wide.yaml"
        fleet.write_text(header + "inventory: wide.py\n" + SERVICE)
        row = Row(count, parallel)
        extra = ["--parallel", str(args.parallel)] if args.parallel else []
        for round_ in range(args.runs):
            wall, cpu = floor(inventory, parallel)
            row.floor_runs.append(wall)
            row.floor_cpu.append(cpu)
            row.sync.append(measured([ARCHFLEET, "sync", "-f", str(fleet), *extra], args.file_limit, count))
            row.dry.append(measured([ARCHFLEET, "sync", "--dry", "-f", str(fleet), *extra], args.file_limit,
                                    count))
            say(f"{count} hosts, round {round_ + 1}: floor {wall:.1f} s, sync {row.sync[-1].wall:.1f} s, "
                f"--dry {row.dry[-1].wall:.1f} s (load {os.getloadavg()[0]:.1f})")
        rows.append(row)
        print_table(rows, sys.stderr)
        if args.json_out:
            args.json_out.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
