"""`archfleet lab up | status | down`."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from archfleet.errors import InputError
from archfleet.lab import apt_cache, image_cache, images, pki, registry, system
from archfleet.lab import hosts as lab_hosts
from archfleet.lab.state import (
    DEFAULT_COUNTS,
    LabHost,
    LabPaths,
    LabState,
    RegistryInfo,
    load,
    save,
    state_dir,
    write_private,
)
from archfleet.run import run, say, succeeds
from archfleet.table import format_table

DEFAULT_NETWORK = "archfleet-lab"
DEFAULT_SUBNET = "172.28.77.0/24"
REGISTRY_PORT = 5000
SSH_USER = "root"
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")


def lab_network() -> tuple[str, str, str]:
    network = os.environ.get("ARCHFLEET_LAB_NETWORK", DEFAULT_NETWORK)
    subnet = os.environ.get("ARCHFLEET_LAB_SUBNET", DEFAULT_SUBNET)
    try:
        net = ipaddress.ip_network(subnet)
    except ValueError as error:
        raise InputError(f"ARCHFLEET_LAB_SUBNET: {error}") from None
    if net.num_addresses < 256:
        raise InputError(f"ARCHFLEET_LAB_SUBNET: {subnet} is smaller than a /24")
    return network, str(net), str(net.network_address + 1)


def ensure_ssh_key(paths: LabPaths) -> None:
    if not paths.ssh_key.exists():
        paths.ssh_key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "archfleet-lab", "-f", str(paths.ssh_key)])
    public = paths.ssh_key.with_suffix(".pub").read_text()
    if not paths.authorized_keys.exists() or paths.authorized_keys.read_text() != public:
        paths.authorized_keys.write_text(public)
    paths.authorized_keys.chmod(0o644)


def trust_registry_locally(paths: LabPaths, address: str) -> None:
    """The local Docker engine and client trust the lab CA for the registry, and are logged in."""
    certs = DOCKER_CERTS_DIR / address
    ca = paths.ca_cert.read_bytes()
    if not (certs / "ca.crt").exists() or (certs / "ca.crt").read_bytes() != ca:
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "ca.crt").write_bytes(ca)
    # `docker login` verifies the password against the registry; the password goes through stdin.
    run(
        ["docker", "login", "--username", registry.REGISTRY_USER, "--password-stdin", address],
        input_text=paths.registry_password.read_text().strip(),
    )


def desired_counts(paths: LabPaths, requested: dict[str, int | None]) -> dict[str, int]:
    """Counts per host kind: as requested, else as the running lab has them, else the defaults."""
    counts = dict(DEFAULT_COUNTS)
    if paths.lab_json.exists():
        counts.update(load(paths).counts)
    counts.update({kind: count for kind, count in requested.items() if count is not None})
    for kind, count in counts.items():
        if not 0 <= count <= lab_hosts.MAX_HOSTS[kind]:
            raise InputError(f"lab up: --{kind} must be between 0 and {lab_hosts.MAX_HOSTS[kind]}, not {count}")
    return counts


def up(**requested: int | None) -> LabState:
    """Start the lab, or reconcile it with ``requested`` host counts per kind (amd64=, arm64=, workstation=, spot=)."""
    started = time.monotonic()
    paths = LabPaths(state_dir())
    network, subnet, gateway = lab_network()
    counts = desired_counts(paths, requested)
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.root.chmod(0o700)

    system.ensure_packages()
    system.ensure_dockerd()
    if any(h.arch == "arm64" for h in lab_hosts.planned_hosts(network, subnet, counts)):
        system.ensure_binfmt()

    address = f"{gateway}:{REGISTRY_PORT}"
    pki.ensure_pki(paths, gateway)
    ensure_ssh_key(paths)
    lab_hosts.ensure_network(network, subnet, gateway)
    apt_cache.ensure_apt_cache(paths, gateway)
    registry.ensure_registry(paths, address)
    trust_registry_locally(paths, address)

    wanted = lab_hosts.planned_hosts(network, subnet, counts)
    arches = sorted({h.arch for h in wanted})
    with ThreadPoolExecutor(max_workers=2) as pool:
        host_images = dict(zip(arches, pool.map(images.ensure_host_image, arches), strict=True))

    existing = lab_hosts.existing_containers(network)
    surplus = sorted(set(existing) - {h.container for h in wanted})
    if surplus:
        say(f"removing surplus lab hosts: {' '.join(surplus)}")
        lab_hosts.remove_hosts(network, surplus)
        for name in surplus:
            subprocess.run(["docker", "volume", "rm", f"{name}-docker"], capture_output=True, check=False)
    if any(h.kind == "cloud" for h in wanted):
        host_images["cloud"] = images.ensure_cloud_image()
    image_ids = {key: images.image_id(image) for key, image in host_images.items()}

    def image_key(host: LabHost) -> str:
        return "cloud" if host.kind == "cloud" else host.arch

    changed = [
        h for h in wanted
        if lab_hosts.start_host(h, network, host_images[image_key(h)], image_ids[image_key(h)], paths, existing)
    ]
    if changed:
        say(f"started {len(changed)} lab host(s): {' '.join(h.name for h in changed)}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        known = sorted(set(pool.map(lab_hosts.host_key, wanted)))
    known_text = "".join(line + "\n" for line in known)
    if not paths.known_hosts.exists() or paths.known_hosts.read_text() != known_text:
        write_private(paths.known_hosts, known_text)
    lab_hosts.wait_for_ssh(wanted, paths, SSH_USER)

    state = LabState(
        network=network,
        subnet=subnet,
        gateway=gateway,
        registry=RegistryInfo(
            address=address,
            username=registry.REGISTRY_USER,
            password_file=str(paths.registry_password),
            ca_cert=str(paths.ca_cert),
        ),
        ssh_user=SSH_USER,
        ssh_key=str(paths.ssh_key),
        known_hosts=str(paths.known_hosts),
        counts=counts,
        hosts=wanted,
    )
    save(state, paths)
    say(f"lab up: {len(wanted)} host(s), registry {address} ({time.monotonic() - started:.1f}s)")
    return state


def status() -> tuple[LabState, list[dict[str, str]]]:
    paths = LabPaths(state_dir())
    state = load(paths)
    with ThreadPoolExecutor(max_workers=8) as pool:
        probes = list(pool.map(lambda h: lab_hosts.probe(h, paths, state.ssh_user), state.hosts))
    rows = []
    for host, probed in zip(state.hosts, probes, strict=True):
        rows.append({"host": host.name, "arch": host.arch, "address": host.address, **probed})
    registry_up = registry.registry_answers(state.registry.address, Path(state.registry.ca_cert))
    rows.append({
        "host": "registry", "arch": "-", "address": state.registry.address,
        "ssh": "-", "machine": "-", "engine": "up" if registry_up else "down",
    })
    return state, rows


def down(keep_images_labelled: str | None = None) -> None:
    """Remove what `lab up` made: containers, their volumes, the network, the registry and its trust, the package
    cache's process.

    The cached rootfs tarballs, base images and hosts' packages stay (they are the slow part and hold no secrets).
    With ``keep_images_labelled`` (the label ``archfleet images build`` gives each image: the hash of its inputs),
    the registry's storage keeps the tags of built images, whole (archfleet/lab/image_cache.py); without it, the
    storage goes too.
    """
    paths = LabPaths(state_dir())
    network, _, gateway = lab_network()
    if paths.lab_json.exists():
        network = load(paths).network
    existing = lab_hosts.existing_containers(network) if system.dockerd_answers() else {}
    if existing:
        say(f"removing {len(existing)} lab host(s)")
        lab_hosts.remove_hosts(network, sorted(existing))
        volumes = run([
            "docker", "volume", "ls", "-q", "--filter", f"name=^{network}-",
        ]).stdout.split()
        volumes = [v for v in volumes if v.endswith("-docker")]
        if volumes:
            run(["docker", "volume", "rm", *volumes])
    registry.stop_registry(paths)
    apt_cache.stop_apt_cache(paths)
    if paths.registry_data.is_dir():
        if keep_images_labelled:
            pruned = image_cache.prune(paths.registry_data, keep_images_labelled)
            say(f"kept {len(pruned.kept)} tag(s) of built images in {paths.registry_data} for the next lab up "
                f"({len(pruned.dropped)} other tag(s) removed)")
        else:
            shutil.rmtree(paths.registry_data)
    address = f"{gateway}:{REGISTRY_PORT}"
    if system.dockerd_answers():
        subprocess.run(["docker", "logout", address], capture_output=True, check=False)
        if succeeds(["docker", "network", "inspect", network]):
            run(["docker", "network", "rm", network])
    shutil.rmtree(DOCKER_CERTS_DIR / address, ignore_errors=True)
    if paths.root.exists():
        shutil.rmtree(paths.root)
    say("lab down: removed hosts, volumes, network, registry and its files")


def print_status_table(rows: list[dict[str, str]]) -> None:
    columns = ["host", "arch", "address", "ssh", "machine", "engine"]
    print(format_table([c.upper() for c in columns], [[row[c] for c in columns] for row in rows]))




def reset(names: list[str]) -> LabState:
    """Give hosts back their first boot: remove their containers and engine volumes, then `up` again."""
    paths = LabPaths(state_dir())
    state = load(paths)
    chosen = [state.host(name) for name in names]
    lab_hosts.remove_hosts(state.network, [h.container for h in chosen])
    for host in chosen:
        subprocess.run(
            ["docker", "volume", "rm", lab_hosts.volume_name(state.network, host.name)],
            capture_output=True, check=False,
        )
    say(f"reset {' '.join(names)}")
    return up()
