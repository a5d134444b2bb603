"""Benchmark: the CPU time of loading and validating a fleet file, and of refusing an alias bomb. Prints figures;
asserts nothing about time.

    .venv/bin/python -m tests.benchmarks.fleet_load [--hosts 500] [--services 50] [--runs 5] [--megabytes 5]

1. A generated fleet of ``--hosts`` hosts (a pyinfra inventory in two platform groups and ten zones) and
   ``--services`` services (an image, groups or hosts, ports, environment values with ``{{ }}``, a volume, a health
   check; one in five also a rendered file and a secret; one in five runs on every host): the CPU time
   (``time.process_time``) of ``load_fleet``, which reads the YAML, checks every section, loads the inventory, places
   every service and renders each for every host it runs on. The target: 500 hosts and 50 services in under 1 s.
   The YAML alone, and every section's checks without the inventory, are printed beside it. Each figure is the
   median of ``--runs`` runs in this process (every run reads and checks everything again: nothing is kept).
2. With ``--megabytes N`` also the old size: a fleet file of about N MB (thousands of services, on 50 hosts).
3. A "billion laughs" file (9 levels of 9 aliases: 387 420 489 nodes if expanded) refused by the loader, in a
   child process: its time, and the child's peak memory next to a child that only imports the loader.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import archfleet.fleet as fleet_module
from archfleet import schema
from archfleet.fleet import load_fleet

PROJECT = Path(__file__).resolve().parents[2]
ZONES = 10

SERVICE = """\
  svc-{i}:
    image: registry.example.com:5000/team/svc-{i}:1.0
    {where}
    ports: [{port}]
    environment:
      MODE: production
      WORKERS: 4
      PEER: "{{{{ host.name }}}}-{i}"
    volumes: ["/srv/svc-{i}:/data"]
    healthcheck: {{command: "true", interval: 2, retries: 5}}
    stop_order: {order}
"""

SERVICE_FILES = """\
    files:
      - template: templates/svc.conf.j2
        mount: /etc/svc/svc.conf
    vars: {{listen: "{port}"}}
    secrets:
      token: {{file: secrets/token, mount: /run/secrets/token}}
"""

TEMPLATE = """\
# {{ service.name }} on {{ host.name }} ({{ host.platform }})
listen {{ listen }}
token_file /run/secrets/token
"""

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n" for previous, name in zip("abcdefgh", "bcdefghi",
                                                                                      strict=True))

CHILD = textwrap.dedent("""\
    import sys, time, tracemalloc
    from archfleet.schema import SchemaError, parse_yaml
    text = open(sys.argv[1]).read()
    tracemalloc.start()
    started = time.process_time()
    try:
        if sys.argv[2] == "bomb":
            parse_yaml(text, sys.argv[1])
        outcome = "loaded" if sys.argv[2] == "bomb" else "imported only"
    except SchemaError as error:
        outcome = str(error)
    seconds = time.process_time() - started
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    peak = int(status["VmHWM"].split()[0]) / 1024  # this process's peak RSS (ru_maxrss would include the parent's)
    print(f"{seconds:.3f}\\t{peak:.1f}\\t{traced:.1f}\\t{outcome}")
""")


def fleet_text(services: int, hosts: int) -> str:
    """A fleet file of ``services`` services for an inventory of ``hosts`` hosts (`inventory_text`): one service in
    five runs on every host (both platform groups), one in five has a rendered file and a secret, the others run on
    one zone (or, for a small fleet, on one host)."""
    parts = ['registry: {address: "registry.example.com:5000"}\ninventory: inventory.py\nservices:\n']
    for index in range(services):
        if index % 5 == 0:
            where = "groups: [amd64, arm64]"
        elif hosts >= ZONES * 10:
            where = f"groups: [zone_{index % ZONES}]"
        else:
            where = f"hosts: [host-{index % hosts}]"
        port = 10000 + index % 50000
        parts.append(SERVICE.format(i=index, where=where, port=port, order=index % 100))
        if index % 5 == 1:
            parts.append(SERVICE_FILES.format(port=port))
    return "".join(parts)


def inventory_text(hosts: int) -> str:
    """A pyinfra inventory: ``hosts`` hosts, half amd64 and half arm64, in ``ZONES`` zone groups."""
    names = [f"host-{number}" for number in range(hosts)]
    lines = [f"amd64 = [{', '.join(repr((name, {'ssh_hostname': '127.0.0.1'})) for name in names[0::2])}]",
             f"arm64 = [{', '.join(repr((name, {'ssh_hostname': '127.0.0.1'})) for name in names[1::2])}]"]
    lines += [f"zone_{zone} = {names[zone::ZONES]!r}" for zone in range(ZONES)]
    return "\n".join(lines) + "\n"


def write_fleet(folder: Path, services: int, hosts: int, text: str | None = None) -> Path:
    """The fleet file, its inventory, template and secret under ``folder``; the fleet file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inventory.py").write_text(inventory_text(hosts))
    (folder / "templates").mkdir(exist_ok=True)
    (folder / "templates" / "svc.conf.j2").write_text(TEMPLATE)
    (folder / "secrets").mkdir(exist_ok=True)
    (folder / "secrets" / "token").write_text("s3cret\n")
    (folder / "secrets" / "token").chmod(0o600)
    path = folder / "fleet.yaml"
    path.write_text(text if text is not None else fleet_text(services, hosts))
    return path


def big_fleet(megabytes: float) -> str:
    """A fleet file of about ``megabytes`` MB, its services on 50 hosts (the old benchmark's size)."""
    service_size = len(fleet_text(10, 50)) // 10
    return fleet_text(int(megabytes * 1_000_000 / service_size), 50)


def cpu_times(runs: int, action: Callable[[], object]) -> list[float]:
    """The CPU time (``time.process_time``) of each of ``runs`` runs; what a run returns is freed after its time."""
    seconds = []
    for _ in range(runs):
        started = time.process_time()
        result = action()
        seconds.append(time.process_time() - started)
        del result
    return seconds


def time_load(path: Path, runs: int) -> str:
    """The whole load_fleet (the first run, which imports what the load imports lazily, and the median), the YAML
    alone, and every section without the inventory: CPU seconds."""
    whole = cpu_times(runs, lambda: load_fleet(path))
    yaml_only = statistics.median(cpu_times(runs, lambda: schema.load_yaml(path)))
    placement = fleet_module.place_services
    fleet_module.place_services = lambda fleet, top: None  # type: ignore[assignment]
    try:
        sections = statistics.median(cpu_times(runs, lambda: load_fleet(path)))
    finally:
        fleet_module.place_services = placement  # type: ignore[assignment]
    return (f"load_fleet {statistics.median(whole):5.3f} s CPU, median of {runs} (the first run {whole[0]:5.3f} s)"
            f"   of which the YAML {yaml_only:5.3f} s; the YAML and every section's checks without the inventory, "
            f"placement and renders {sections:5.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (the median is printed)")
    parser.add_argument("--megabytes", type=float, default=0, help="also time a fleet file of this size (e.g. 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = write_fleet(Path(folder) / "fleet", args.services, args.hosts)
        text = path.read_text()
        print(f"fleet: {args.hosts} hosts, {args.services} services, {len(text) / 1e3:.1f} kB, "
              f"{text.count(chr(10))} lines", flush=True)
        print(f"  {time_load(path, args.runs)}", flush=True)
        if args.megabytes:
            text = big_fleet(args.megabytes)
            path = write_fleet(Path(folder) / "big", 0, 50, text)
            print(f"fleet: 50 hosts, {text.count(chr(10) + '  svc-')} services, {len(text) / 1e6:.1f} MB", flush=True)
            print(f"  {time_load(path, 1)}", flush=True)

        bomb = Path(folder) / "bomb.yaml"
        bomb.write_text(BOMB)
        print(f"alias bomb: {len(BOMB)} bytes, 9 levels of 9 aliases ({9 ** 9:,} nodes if expanded)")
        for mode in ("baseline", "bomb"):
            done = subprocess.run([sys.executable, "-c", CHILD, str(bomb), mode], cwd=PROJECT, capture_output=True,
                                  text=True, timeout=300, check=True)
            seconds, peak, traced, outcome = done.stdout.strip().split("\t", 3)
            label = "refused" if mode == "bomb" else "import"
            print(f"  {label:<8} {float(seconds):6.3f} s CPU   peak RSS {float(peak):6.1f} MiB   "
                  f"peak Python allocations while parsing {float(traced):6.2f} MiB   {outcome}", flush=True)
        print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
