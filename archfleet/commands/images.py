"""`archfleet images build [NAME...] [--dry]` and `archfleet images verify REF [--platforms ...] [--json]`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from archfleet.errors import InputError, OperationFailed
from archfleet.fleet import Fleet, default_fleet_path, load_fleet
from archfleet.fleet.images import ImageSpec
from archfleet.fleet.registry import RegistrySpec
from archfleet.images.build import ImageResult, ImageTimeouts, build_image, probe_builders
from archfleet.images.engine import engines, local_engine_platform
from archfleet.images.plan import Builder, candidates_of, choose_path, inventory_hosts
from archfleet.images.verify import DEFAULT_PLATFORMS, human_size, verify_with_client
from archfleet.platforms import UnknownPlatform
from archfleet.platforms import parse as parse_platform
from archfleet.registry_client import RegistryClient, client_for, parse_reference
from archfleet.run import say
from archfleet.table import format_table

DEFAULT_INVENTORY = "inventories/lab.py"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("images", help="build, publish and verify multi-arch images")
    commands = parser.add_subparsers(dest="images_command", metavar="SUBCOMMAND")
    commands.required = True

    build = commands.add_parser("build", help="build every platform of the fleet's images and publish one tag each")
    build.add_argument("names", nargs="*", metavar="NAME", help="images to build (default: all, in file order)")
    build.add_argument("--dry", action="store_true", help="print what would be built where and pushed; change nothing")
    build.add_argument("-f", "--fleet", type=Path, help="fleet file (default fleet.yaml or $ARCHFLEET_FLEET)")
    build.add_argument("-i", "--inventory", help=f"pyinfra inventory of builder hosts (default: the fleet file's "
                                                 f"`inventory`, else {DEFAULT_INVENTORY})")
    build.set_defaults(handler=build_command)

    verify = commands.add_parser("verify", help="check that a tag has every platform, each really that platform")
    verify.add_argument("ref", metavar="REF", help="an image NAME from the fleet file (its published tag), or "
                                                   "[REGISTRY/]REPOSITORY[:TAG] (registry: the fleet's)")
    verify.add_argument("--platforms", nargs="+", metavar="PLATFORM",
                        help="required platforms, e.g. linux/amd64 linux/arm64 (or comma-separated; default: the "
                             "fleet image's platforms, else linux/amd64 linux/arm64)")
    verify.add_argument("-f", "--fleet", type=Path, help="fleet file (default fleet.yaml or $ARCHFLEET_FLEET)")
    verify.add_argument("--json", action="store_true", help="print one JSON document (the report) instead of the "
                                                            "table; the exit code is the same")
    verify.set_defaults(handler=verify_command)


def inventory_path(fleet: Fleet, option: str | None) -> Path | None:
    if option:
        path = Path(option)
        if not path.is_file():
            raise InputError(f"{option}: no such inventory file")
        return path
    path = fleet.base_dir / (fleet.inventory or DEFAULT_INVENTORY)
    return path if path.is_file() else None


def selected_images(fleet: Fleet, names: list[str]) -> list[ImageSpec]:
    images: dict[str, ImageSpec] = fleet.images
    unknown = [n for n in names if n not in images]
    if unknown:
        raise InputError(f"{fleet.path}: images: no image named {', '.join(unknown)} "
                         f"(images: {', '.join(images) or 'none'})")
    if not images:
        raise InputError(f"{fleet.path}: images: no images declared")
    return [images[n] for n in (names or list(images))]


def results_table(results: list[ImageResult]) -> str:
    """One row per image platform. CACHED is ``cached/steps`` of the build (steps that can come from the cache)."""
    rows = []
    for image in results:
        for r in image.platforms:
            steps = r.cached_steps + r.run_steps
            rows.append((image.spec.name, str(r.platform), r.path.label, r.action,
                         human_size(r.size) if r.size else "-", f"{r.seconds:.0f}s" if r.seconds else "-",
                         f"{r.cached_steps}/{steps}" if steps else "-", r.digest or "-"))
    return format_table(("IMAGE", "PLATFORM", "PATH", "RESULT", "SIZE", "TIME", "CACHED", "DIGEST"), rows)


def declared_builders(fleet: Fleet) -> list[Builder]:
    """The builder hosts the fleet file's ``builders:`` names, and only those, each asked what its engine builds
    for: one that does not answer, or is another platform than the one it is named for, is an error."""
    assert fleet.inventory_path is not None
    named = {choice.builder: choice for choice in fleet.builders.values() if not choice.local}
    candidates = candidates_of(fleet.hosts) if fleet.hosts is not None else []  # builders are among them (load)
    builders = probe_builders([c for c in candidates if c.name in named]) if named else []
    for name, choice in named.items():
        probed = next((b for b in builders if b.name == name), None)
        if probed is None:
            raise OperationFailed(f"{choice.node.where}: builders: {choice.platform}: {name}'s Docker engine does "
                                  "not answer (see above)")
        if probed.platform != choice.platform:
            raise OperationFailed(f"{choice.node.where}: builders: {choice.platform}: {name}'s engine builds "
                                  f"{probed.platform}")
    say(f"builders from {fleet.path}: " + ", ".join(f"{c.platform} on {c.builder}" for c in fleet.builders.values())
        + "; any other platform on the local engine")
    return builders


def build_command(args: argparse.Namespace) -> int:
    started = time.monotonic()
    fleet = load_fleet(args.fleet or default_fleet_path())
    specs = selected_images(fleet, args.names)
    client = RegistryClient.for_spec(fleet.registry.resolve())
    inventory = inventory_path(fleet, args.inventory)
    needs_builders = any(s.local_image is None for s in specs)
    builders = []
    if needs_builders and fleet.builders and not args.inventory:
        builders = declared_builders(fleet)
    elif needs_builders and inventory is not None:
        own = not args.inventory and fleet.hosts is not None  # the fleet's hosts, with its ssh: applied
        builders = probe_builders(candidates_of(fleet.hosts) if own and fleet.hosts is not None
                                  else inventory_hosts(inventory))
        found = ", ".join(f"{b.name} ({b.platform})" for b in builders) or "none"
        say(f"builder hosts: the hosts of {inventory} whose Docker engine answers (another inventory: -i FILE; "
            f"or name them in the fleet file's builders:): {found}")
    elif needs_builders:
        say("no builder inventory: every platform builds on the local engine")
    local = local_engine_platform()
    for platform in sorted({p for s in specs if s.local_image is None for p in s.platforms}, key=str):
        path = choose_path(platform, builders, local)
        say(f"builder for {platform}: {path.where} ({path.reason})")
    timeouts = ImageTimeouts.of(fleet)
    results = []
    with engines() as pool:
        for spec in specs:
            results.append(build_image(spec, client, builders, local, pool, dry=args.dry, timeouts=timeouts))
    print(results_table(results))
    if args.dry:
        print("dry run: nothing built or pushed")
    else:
        published = [r.ref for r in results if r.published]
        print(f"published: {', '.join(published)}" if published else "all images up to date")
    print(f"total {time.monotonic() - started:.0f}s")
    return 0


def parse_platform_args(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    texts = [t for v in values for t in v.split(",") if t.strip()]
    try:
        return [str(parse_platform(t)) for t in texts]
    except UnknownPlatform as error:
        raise InputError(f"--platforms: {error}") from None


def verify_command(args: argparse.Namespace) -> int:
    fleet_path = args.fleet or default_fleet_path()
    source: Fleet | RegistrySpec
    if args.fleet is None and not fleet_path.exists():
        source, images = RegistrySpec(lab=True), dict[str, ImageSpec]()
    else:
        fleet = load_fleet(fleet_path)
        source, images = fleet, fleet.images
    own = (source.registry if isinstance(source, Fleet) else source).resolve()
    if not own.address:
        raise InputError("registry: no address (set registry.address, or registry.lab: true)")
    named: ImageSpec | None = images.get(args.ref)
    # A REF without a registry part is in the fleet's registry; any other registry is read with its own credentials.
    reference = parse_reference(named.ref(own.address) if named else args.ref, own.address)
    client = client_for(reference.registry or own.address, source)
    platforms = parse_platform_args(args.platforms)
    if platforms is None:
        matching = [named] if named else [s for s in images.values() if s.repository == reference.repository]
        platforms = [str(p) for p in matching[0].platforms] if matching else list(DEFAULT_PLATFORMS)
    say(f"verifying {reference} for {', '.join(platforms)}")
    report = verify_with_client(client, reference, platforms)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(f"{report.reference}  index {report.index_digest or '-'}")
        print(report.table())
    if not report.ok:
        raise OperationFailed(report.summary())
    return 0
