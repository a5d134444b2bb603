"""Lab hosts: one container each, with its own hostname, sshd and Docker engine."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from archfleet import ssh
from archfleet.errors import OperationFailed
from archfleet.lab.apt_cache import HOST_APT_CONF
from archfleet.lab.state import HOST_KINDS, LabHost, LabPaths
from archfleet.run import run, succeeds

LAB_LABEL = "archfleet.lab"
# Named capabilities instead of --privileged (the kernel's bounding set lacks CAP_SYS_RESOURCE here).
HOST_CONTAINER_FLAGS = (
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "MKNOD", "--cap-add", "SYS_PTRACE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--device-cgroup-rule", "a *:* rwm",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--init",
)
# Address offsets inside the lab subnet, so each host keeps its address across `lab up`s.
ADDRESS_OFFSET = {"amd64": 10, "arm64": 130, "workstation": 230, "spot": 240, "cloud": 250}
MAX_HOSTS = {"amd64": 100, "arm64": 100, "workstation": 10, "spot": 10, "cloud": 4}


def container_name(network: str, host_name: str) -> str:
    return f"{network}-{host_name}"


def volume_name(network: str, host_name: str) -> str:
    return f"{network}-{host_name}-docker"


def planned_hosts(network: str, subnet: str, counts: dict[str, int]) -> list[LabHost]:
    net = ipaddress.ip_network(subnet)
    hosts = []
    for kind, count in counts.items():
        for index in range(1, count + 1):
            name = f"{kind}-{index}"
            address = str(net.network_address + ADDRESS_OFFSET[kind] + index - 1)
            hosts.append(LabHost(name, HOST_KINDS[kind], address, container_name(network, name), kind))
    return hosts


def existing_containers(network: str) -> dict[str, dict[str, object]]:
    """The lab's host containers by name, with their state."""
    result = run([
        "docker", "ps", "-a", "--filter", f"label={LAB_LABEL}={network}", "--format", "{{.Names}}",
    ])
    names = result.stdout.split()
    if not names:
        return {}
    inspected = json.loads(run(["docker", "inspect", *names]).stdout)
    return {c["Name"].lstrip("/"): c for c in inspected}


def ensure_network(network: str, subnet: str, gateway: str) -> None:
    if succeeds(["docker", "network", "inspect", network]):
        return
    run([
        "docker", "network", "create", "--driver", "bridge", "--subnet", subnet, "--gateway", gateway,
        "--label", f"{LAB_LABEL}={network}", network,
    ])


def start_host(host: LabHost, network: str, image: str, image_id: str, paths: LabPaths, existing: dict) -> bool:
    """Create or start the host's container (``image_id``: the current id of ``image``). True when it changed."""
    container = existing.get(host.container)
    if container is not None:
        config_image = container["Config"]["Image"]
        state = container["State"]
        if config_image == image and container["Image"] == image_id:
            if state["Running"]:
                return False
            run(["docker", "start", host.container])
            return True
        # The host image was rebuilt: replace the container (its engine's volume stays).
        run(["docker", "rm", "-f", host.container])
    run([
        "docker", "run", "-d", "--name", host.container, "--hostname", host.name,
        "--network", network, "--ip", host.address, "--platform", f"linux/{host.arch}",
        "--label", f"{LAB_LABEL}={network}", "--label", f"{LAB_LABEL}.kind={host.kind}",
        *HOST_CONTAINER_FLAGS,
        "-v", f"{volume_name(network, host.name)}:/var/lib/docker",
        "-v", f"{paths.authorized_keys}:{authorized_keys_path(host)}:ro",
        "-v", f"{paths.apt_host_setting}:{HOST_APT_CONF}:ro",  # the lab's package cache
        image,
    ])
    return True


def authorized_keys_path(host: LabHost) -> str:
    """Where the lab's key is authorized on the host: root's, or the cloud user's on a cloud-kind host."""
    user = host.login_user("root")
    return f"{'/root' if user == 'root' else '/home/' + user}/.ssh/authorized_keys"


def host_key(host: LabHost, timeout: float = 120) -> str:
    """The host's ed25519 public key, generated on its first boot."""
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(
            ["docker", "exec", host.container, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"],
            capture_output=True, text=True, check=False,
        )
        if result.returncode == 0 and result.stdout.startswith("ssh-ed25519 "):
            key_type, key = result.stdout.split()[:2]
            return f"{host.address} {key_type} {key}"
        if time.monotonic() > deadline:
            raise OperationFailed(f"{host.name}: no SSH host key after {timeout:.0f}s")
        time.sleep(0.5)


def ssh_argv(paths: LabPaths, user: str, address: str, *command: str) -> list[str]:
    """ssh to a lab host with the lab's key and known_hosts."""
    return [*ssh.ssh_argv(user, address, key=str(paths.ssh_key), known_hosts=str(paths.known_hosts)), *command]


def wait_for_ssh(hosts: list[LabHost], paths: LabPaths, user: str, timeout: float = 120) -> None:
    def wait(host: LabHost) -> None:
        deadline = time.monotonic() + timeout
        while not succeeds(ssh_argv(paths, host.login_user(user), host.address, "true"), timeout=15):
            if time.monotonic() > deadline:
                raise OperationFailed(f"{host.name} ({host.address}): sshd did not answer in {timeout:.0f}s")
            time.sleep(0.5)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(wait, hosts))


def probe(host: LabHost, paths: LabPaths, user: str) -> dict[str, str]:
    """What `lab status` shows: does SSH answer, and does the host's engine answer."""
    result = subprocess.run(
        ssh_argv(
            paths, host.login_user(user), host.address,
            "uname -m; " + ("sudo -n " if host.login_user(user) != "root" else "")
            + "docker version --format '{{.Server.Version}} {{.Server.Arch}}' 2>/dev/null || echo down",
        ),
        capture_output=True, text=True, check=False, timeout=30,
    )
    if result.returncode not in (0, 1) or not result.stdout:
        return {"ssh": "down", "machine": "?", "engine": "?"}
    lines = result.stdout.split("\n")
    return {"ssh": "up", "machine": lines[0].strip(), "engine": (lines[1].strip() if len(lines) > 1 else "down")}


def remove_hosts(network: str, names: list[str]) -> None:
    if not names:
        return
    run(["docker", "rm", "-f", *names])
