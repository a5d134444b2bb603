"""Benchmark: loading and validating a 5 MB fleet file, and refusing an alias bomb. Prints figures; asserts nothing
about time.

    .venv/bin/python -m tests.benchmarks.fleet_load [--megabytes 5]

1. A generated fleet file of ~5 MB (thousands of services, each with an image, a host, a port, environment values
   with `{{ }}`, a volume, a health check), with libyaml's parser and with PyYAML's pure one (median of ``--runs`` /
   1 runs; wall time and CPU time, as the machine may be shared): the YAML layer alone; YAML + every section's checks
   (placement switched off); with ``--placement`` also the whole ``load_fleet`` (+ the inventory, placement and a
   render of every service for its host: the lead's checks). A document like this one is read by the line reader
   (archfleet.schema._LineReader) with either parser chosen here except the pure-Python one (its row times the event
   composer); ``--libyaml-only`` skips that row.
2. A "billion laughs" file (9 levels of 9 aliases: 387 420 489 nodes if expanded) refused by the loader, in a
   child process: its time, and the child's peak memory (ru_maxrss) next to a child that only imports the loader.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import archfleet.fleet as fleet_module
from archfleet import schema
from archfleet.fleet import load_fleet

PROJECT = Path(__file__).resolve().parents[2]

SERVICE = """\
  svc-{i}:
    image: registry.example.com:5000/team/svc-{i}:1.0
    hosts: [host-{host}]
    ports: [{port}]
    environment:
      MODE: production
      WORKERS: 4
      PEER: "{{{{ host.name }}}}-{i}"
    volumes: ["/srv/svc-{i}:/data"]
    healthcheck: {{command: "true", interval: 2, retries: 5}}
    stop_order: {order}
"""

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n" for previous, name in zip("abcdefgh", "bcdefghi",
                                                                                      strict=True))

CHILD = textwrap.dedent("""\
    import sys, time, tracemalloc
    from archfleet.schema import SchemaError, parse_yaml
    text = open(sys.argv[1]).read()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        if sys.argv[2] == "bomb":
            parse_yaml(text, sys.argv[1])
        outcome = "loaded" if sys.argv[2] == "bomb" else "imported only"
    except SchemaError as error:
        outcome = str(error)
    seconds = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    peak = int(status["VmHWM"].split()[0]) / 1024  # this process's peak RSS (ru_maxrss would include the parent's)
    print(f"{seconds:.3f}\\t{peak:.1f}\\t{traced:.1f}\\t{outcome}")
""")


def big_fleet(megabytes: float) -> str:
    parts = ['registry: {address: "registry.example.com:5000"}\ninventory: inventory.py\nservices:\n']
    size, index = len(parts[0]), 0
    while size < megabytes * 1_000_000:
        part = SERVICE.format(i=index, host=index % 50, port=10000 + index % 50000, order=index % 100)
        parts.append(part)
        size += len(part)
        index += 1
    return "".join(parts)


def median_of(runs: int, action: object) -> str:
    """The median wall time and the median CPU time of ``runs`` runs (CPU time says more on a busy machine). What a
    run returns is freed after its time is taken (freeing a 5 MB file's tree and specs takes ~0.07 s more)."""
    assert callable(action)
    walls, cpus = [], []
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        result = action()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
        del result
    return f"{statistics.median(walls):6.2f} s ({statistics.median(cpus):5.2f} s CPU)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=float, default=5)
    parser.add_argument("--runs", type=int, default=5, help="runs per figure with libyaml (the median is printed)")
    parser.add_argument("--placement", action="store_true",
                        help="also time the whole load_fleet (inventory, placement, a render per service and host)")
    parser.add_argument("--libyaml-only", action="store_true",
                        help="skip the pure-Python parser's row (20 s for 5 MB; a comparison only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fleet.yaml"
        text = big_fleet(args.megabytes)
        path.write_text(text)
        hosts = ", ".join(f'("host-{n}", {{"ssh_hostname": "127.0.0.1"}})' for n in range(50))
        (Path(folder) / "inventory.py").write_text(f"hosts = [{hosts}]\n")
        services = text.count("\n  svc-")
        print(f"fleet file: {len(text) / 1e6:.1f} MB, {services} services, {text.count(chr(10))} lines", flush=True)
        loaders = [("libyaml", schema.FAST_LOADER)] + ([] if args.libyaml_only else [("pure", schema.PURE_LOADER)])
        for label, loader in loaders:
            runs = args.runs if loader is schema.FAST_LOADER else 1
            yaml_only = median_of(runs, lambda loader=loader: schema.load_yaml(path, loader=loader))
            previous = schema.FAST_LOADER
            schema.FAST_LOADER = loader
            placement = fleet_module.place_services
            try:
                whole = median_of(runs, lambda: load_fleet(path)) if args.placement else None
                fleet_module.place_services = lambda fleet, top: None  # type: ignore[assignment]
                sections = median_of(runs, lambda: load_fleet(path))
            finally:
                schema.FAST_LOADER = previous
                fleet_module.place_services = placement  # type: ignore[assignment]
            extra = f"   + inventory, placement, renders {whole}" if whole is not None else ""
            print(f"{label:<8} YAML {yaml_only}   YAML + sections {sections}{extra}   (median of {runs})", flush=True)

        bomb = Path(folder) / "bomb.yaml"
        bomb.write_text(BOMB)
        print(f"alias bomb: {len(BOMB)} bytes, 9 levels of 9 aliases ({9 ** 9:,} nodes if expanded)")
        for mode in ("baseline", "bomb"):
            done = subprocess.run([sys.executable, "-c", CHILD, str(bomb), mode], cwd=PROJECT, capture_output=True,
                                  text=True, timeout=300, check=True)
            seconds, peak, traced, outcome = done.stdout.strip().split("\t", 3)
            label = "refused" if mode == "bomb" else "import"
            print(f"  {label:<8} {float(seconds):6.3f} s   peak RSS {float(peak):6.1f} MiB   "
                  f"peak Python allocations while parsing {float(traced):6.2f} MiB   {outcome}", flush=True)
        print(f"(this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
