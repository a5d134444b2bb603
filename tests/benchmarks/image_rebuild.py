"""Benchmark: a cold builder's rebuild after a one-file change, without and with the registry cache. Prints
figures; asserts nothing about time.

    .venv/bin/python -m tests.benchmarks.image_rebuild [--image buildbot-worker] [--file entrypoint.sh]
                                                       [--platforms linux/amd64 linux/arm64]

Against the running lab (mind ARCHFLEET_LAB_*: it WIPES the builder hosts' images, `docker image prune -af` on
every lab host of the platforms built, so run it on a lab of your own, with nothing else building there). Copies
the image's context to a temporary directory, publishes it once (warm-up) to ``archfleet-bench/IMAGE``, then twice:
wipe the builders (a replaced spot instance), change one file of the context, rebuild every platform -- first
without pulling the previous ``TAG-ARCH`` as cache, then with it (what `archfleet images build` does).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from archfleet.fleet import load_fleet
from archfleet.images.build import ImageResult, build_image, probe_builders
from archfleet.images.engine import engines, local_engine_platform
from archfleet.images.plan import inventory_hosts
from archfleet.lab.state import LabState
from archfleet.lab.state import load as load_lab
from archfleet.registry_client import RegistryClient
from tests.lab.support import PROJECT, on_host


def fleet_file(directory: Path, image: str, context: Path, platforms: list[str]) -> Path:
    path = directory / "fleet.yaml"
    path.write_text(f"""registry: {{lab: true}}
inventory: {PROJECT / "inventories" / "lab.py"}
images:
  debian: {{local_image: 'archfleet-lab/debian:bookworm-{{arch}}', repository: archfleet-bench/debian, tag: bookworm}}
  {image}:
    context: {context}
    platforms: [{", ".join(platforms)}]
    build_args: {{BASE_IMAGE: '{{registry}}/archfleet-bench/debian:bookworm'}}
    repository: archfleet-bench/{image}
""")
    return path


def build(fleet_path: Path, registry_cache: bool) -> tuple[float, list[ImageResult]]:
    """`archfleet images build` in-process (the Python API, so that the registry cache can be switched off)."""
    started = time.monotonic()
    fleet = load_fleet(fleet_path)
    client = RegistryClient.for_spec(fleet.registry.resolve())
    builders = probe_builders(inventory_hosts(PROJECT / "inventories" / "lab.py"))
    local = local_engine_platform()
    with engines() as pool:
        results = [build_image(spec, client, builders, local, pool, registry_cache=registry_cache)
                   for spec in fleet.images.values()]
    return time.monotonic() - started, results


def wipe_builders(lab: LabState, platforms: list[str]) -> None:
    """`docker image prune -af` on every lab host of the platforms' architectures (the builders)."""
    for host in [h for h in lab.hosts_of("amd64") + lab.hosts_of("arm64") if f"linux/{h.arch}" in platforms]:
        result = on_host(host, "docker image prune -af >/dev/null && docker images -q | wc -l")
        if result.returncode != 0:
            raise SystemExit(f"{host.name}: cannot wipe its images: {result.stderr.strip()}")


def report(label: str, seconds: float, results: list[ImageResult], image: str) -> list[str]:
    lines = []
    for result in results:
        if result.spec.name != image:
            continue
        for platform in result.platforms:
            steps = platform.cached_steps + platform.run_steps
            lines.append(f"{label:<34} {platform.platform!s:<12} {platform.path.label:<10} "
                         f"{platform.seconds:7.1f} s   {platform.cached_steps}/{steps} steps from the cache")
    lines.append(f"{label:<34} {'all':<12} {'':<10} {seconds:7.1f} s   (wall, platforms in parallel)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--image", default="buildbot-worker", help="a directory under images/")
    parser.add_argument("--file", default="entrypoint.sh", help="the context file to change (COPYed late)")
    parser.add_argument("--platforms", nargs="+", default=["linux/amd64", "linux/arm64"],
                        help="platforms to build (arm64 builds under QEMU on the lab: slow)")
    args = parser.parse_args()
    lab = load_lab()
    with tempfile.TemporaryDirectory(prefix="archfleet-bench-") as temporary:
        directory = Path(temporary)
        context = directory / args.image
        shutil.copytree(PROJECT / "images" / args.image, context)
        fleet_path = fleet_file(directory, args.image, context, args.platforms)

        def change_one_file() -> None:
            with (context / args.file).open("a") as handle:
                handle.write(f"\n# benchmark change {uuid.uuid4().hex}\n")

        change_one_file()  # a build no earlier run published
        seconds, results = build(fleet_path, registry_cache=True)
        lines = report("warm-up (publish)", seconds, results, args.image)
        for label, registry_cache in (("cold builder, no registry cache", False),
                                      ("cold builder, registry cache", True)):
            wipe_builders(lab, args.platforms)
            change_one_file()
            seconds, results = build(fleet_path, registry_cache=registry_cache)
            lines += report(label, seconds, results, args.image)
        print(f"\n{args.image}: rebuild after changing {args.file} (builders' images wiped before each rebuild)")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
