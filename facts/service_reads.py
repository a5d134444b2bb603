"""What the services facts run on a host and how their output reads, without pyinfra: the one command each runs and
its pure parser. ``facts/services.py`` wraps them as pyinfra facts; ``archfleet sync`` runs them over plain OpenSSH
when nothing must change, so a no-op sync never imports pyinfra."""

from __future__ import annotations

import json
import re
from typing import Any, TypedDict
from urllib.parse import quote

from archfleet.platforms import UnknownPlatform, from_uname

SERVICE_LABEL = "archfleet.service"
SPEC_LABEL = "archfleet.spec"
DIGEST_LABEL = "archfleet.digest"
TAG_LABEL = "archfleet.tag"
FILES_ROOT = "/etc/archfleet/services"
CREDENTIALS_DIR = "/etc/archfleet/registry"  # <registry>.password: what the host's docker login used


def password_path(address: str) -> str:
    return f"{CREDENTIALS_DIR}/{address}.password"


# The Engine API's container list, filtered to archfleet's containers: {"label": ["archfleet.service"]}, URL-encoded.
CONTAINERS_API_PATH = "/containers/json?all=1&filters=" + quote(json.dumps({"label": [SERVICE_LABEL]},
                                                                            separators=(",", ":")), safe="")
DOCKER_SOCKET = "/var/run/docker.sock"

SERVICES_STATE_COMMAND = (
    "printf 'platform='; uname -sm; "
    # One call lists every archfleet container with its labels: the Engine API over its socket, with OpenBSD's nc
    # (an HTTP/1.0 GET: the engine answers and closes; its body, one line of JSON, is what follows the last
    # newline), else with curl (both are what the host bootstrap installs; nc costs the host a quarter of curl's
    # CPU, curl a tenth of the docker CLI's), else the docker CLI (neither, another socket); all failing: the
    # engine is down. The shell only passes the JSON on: api_containers reads it with json.loads, whatever the
    # order of its keys.
    f"if out=$(printf 'GET %s HTTP/1.0\\r\\n\\r\\n' '{CONTAINERS_API_PATH}' | nc -N -U {DOCKER_SOCKET} 2>/dev/null) "
    "&& case $out in 'HTTP/1.'?' 200 '*) true;; *) false;; esac; "
    "then printf 'engine=up\\ncontainers=%s\\n' \"${out##*\n}\"; "
    f"elif out=$(curl -sf --unix-socket {DOCKER_SOCKET} 'http://localhost{CONTAINERS_API_PATH}' 2>/dev/null); "
    "then printf 'engine=up\\ncontainers=%s\\n' \"$out\"; "
    f"elif out=$(docker ps -a --filter label={SERVICE_LABEL} --format "
    f"'container={{{{.Names}}}} {{{{.State}}}} {{{{.Label \"{SERVICE_LABEL}\"}}}} "
    f"{{{{.Label \"{SPEC_LABEL}\"}}}} {{{{.Label \"{DIGEST_LABEL}\"}}}}' 2>/dev/null); "
    "then echo 'engine=up'; [ -z \"$out\" ] || echo \"$out\"; else echo 'engine=down'; exit 0; fi; "
    # sha256sum's own lines ("HEX  PATH") beside find's owner and mode of each file.
    f"find {FILES_ROOT} -mindepth 3 -maxdepth 3 -type f -printf 'meta=%U:%G %#m %p\\n' "
    "-exec sha256sum {} + 2>/dev/null; "
    # The host's clock and each login's time: their difference is the login's age (parse_services_state).
    f"date +now=%s; stat -c 'login=%Y %n' {CREDENTIALS_DIR}/*.password 2>/dev/null; true"
)
SHA256_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")


class ContainerState(TypedDict):
    name: str
    status: str  # created, running, exited, ...
    service: str
    spec: str
    digest: str


class ServicesStateValue(TypedDict):
    platform: str | None  # the host's OCI platform, "linux/arm64" (None when uname is not understood)
    machine: str | None  # uname -m, "aarch64"
    engine_running: bool
    containers: dict[str, ContainerState]  # by container name
    files: dict[str, str]  # host path -> sha256
    file_modes: dict[str, str]  # host path -> "UID:GID MODE" ("0:0 0600")
    login_ages: dict[str, int]  # registry -> seconds since archfleet last logged the host in to it


def oci_platform(uname: str) -> tuple[str | None, str | None]:
    """``"Linux aarch64"`` -> ``("linux/arm64", "aarch64")``; what is not understood is None."""
    kernel, _, machine = uname.strip().partition(" ")
    if not machine:
        return None, None
    try:
        return str(from_uname(kernel, machine)), machine.strip()
    except UnknownPlatform:
        return None, machine.strip()


def parse_services_state(output: list[str]) -> ServicesStateValue:
    value: ServicesStateValue = {
        "platform": None, "machine": None, "engine_running": False, "containers": {}, "files": {},
        "file_modes": {}, "login_ages": {},
    }
    now: int | None = None
    logins: dict[str, int] = {}  # registry -> its login's time (the host's clock)
    for line in output:
        file_line = SHA256_LINE.match(line.strip())
        if file_line:
            value["files"][file_line.group(2).strip()] = file_line.group(1)
            continue
        key, _, rest = line.strip().partition("=")
        if key == "platform":
            value["platform"], value["machine"] = oci_platform(rest)
        elif key == "engine":
            value["engine_running"] = rest == "up"
        elif key == "containers":
            containers = api_containers(rest)
            if containers is None:  # not the Engine API's answer: nothing can be decided about this host
                value["engine_running"] = False
            else:
                value["containers"].update(containers)
        elif key == "container":
            words = rest.split(" ")
            words += [""] * (5 - len(words))
            name = words[0].lstrip("/")
            value["containers"][name] = {
                "name": name, "status": words[1], "service": words[2], "spec": words[3], "digest": words[4],
            }
        elif key == "now" and rest.strip().isdigit():
            now = int(rest)
        elif key == "login":
            time, _, path = rest.partition(" ")
            registry = path.strip().rsplit("/", 1)[-1].removesuffix(".password")
            if time.strip().isdigit() and registry:
                logins[registry] = int(time)
        elif key == "meta":
            owner, mode, path = [*rest.split(" ", 2), "", ""][:3]
            value["file_modes"][path.strip()] = f"{owner} {mode}"
    if now is not None:
        value["login_ages"] = {registry: max(now - time, 0) for registry, time in logins.items()}
    return value


def api_containers(text: str) -> dict[str, ContainerState] | None:
    """The Engine API's ``/containers/json`` list -> container name -> state (None: not such a list)."""
    try:
        items: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        return None
    containers: dict[str, ContainerState] = {}
    for item in items:
        labels = item.get("Labels") or {}
        name = str((item.get("Names") or [""])[0]).lstrip("/")
        containers[name] = {
            "name": name, "status": str(item.get("State") or ""), "service": str(labels.get(SERVICE_LABEL, "")),
            "spec": str(labels.get(SPEC_LABEL, "")), "digest": str(labels.get(DIGEST_LABEL, "")),
        }
    return containers


SERVICE_PROOF_COMMAND = (
    "echo \"platform=$(uname -s) $(uname -m)\"; "
    # The filesystem of Docker's data root, from the same `docker info` that proves the engine answers (an engine
    # that does not answer: its default root, since a full disk is a reason an engine stops).
    "disk() { echo \"docker_root=$1\"; echo \"disk=$(df -Pk \"$1\" 2>/dev/null | tail -n 1)\"; }; "
    "root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null) "
    "|| { disk /var/lib/docker; echo 'engine=down'; exit 0; }; "
    "disk \"$root\"; "
    f"for c in $(docker ps -a --filter label={SERVICE_LABEL} --format '{{{{.Names}}}}'); do "
    f"set -- $(docker inspect --format '{{{{index .Config.Labels \"{SERVICE_LABEL}\"}}}} {{{{.State.Status}}}} "
    f"{{{{index .Config.Labels \"{DIGEST_LABEL}\"}}}} {{{{.Image}}}}' \"$c\"); "
    "platform=$(docker image inspect --format '{{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}}' \"$4\"); "
    "digests=$(docker image inspect --format '{{range .RepoDigests}}{{.}},{{end}}' \"$4\"); "
    "inner=-; [ \"$2\" = running ] && inner=$(docker exec \"$c\" uname -m 2>/dev/null || echo -); "
    "echo \"container=$c $1 $2 $3 $platform $inner $digests\"; done"
)


class ContainerProof(TypedDict):
    name: str
    service: str
    status: str
    digest: str  # the digest archfleet pinned (label)
    image_platform: str  # the image's os/architecture[/variant] as the engine records it
    inner_machine: str  # `uname -m` inside the container ("-" when it is not running)
    repo_digests: list[str]  # the image's REPO@DIGEST names: the pinned digest must be among them


class DiskSpace(TypedDict):
    path: str  # Docker's data root (its default, /var/lib/docker, when the engine did not answer)
    filesystem: str  # df's first column: the device
    mount: str  # where that filesystem is mounted
    size_kib: int
    available_kib: int  # what an unprivileged writer may still use (df's "Available")


class ServiceProofValue(TypedDict):
    platform: str | None  # the host's OCI platform
    machine: str | None  # the host's uname -m
    engine_running: bool
    containers: dict[str, ContainerProof]
    disk: DiskSpace | None  # None: df gave no answer (no such folder, no df)


# One line of `df -Pk`: filesystem (may hold spaces), 1024-blocks, used, available, capacity, mount point.
DF_LINE = re.compile(r"^(?P<filesystem>.*\S)\s+(?P<size>\d+)\s+\d+\s+(?P<available>\d+)\s+\S+\s+(?P<mount>/.*)$")


def parse_service_proof(output: list[str]) -> ServiceProofValue:
    value: ServiceProofValue = {"platform": None, "machine": None, "engine_running": True, "containers": {},
                                "disk": None}
    root = ""
    for line in output:
        key, _, rest = line.strip().partition("=")
        if key == "platform":
            value["platform"], value["machine"] = oci_platform(rest)
        elif key == "engine":
            value["engine_running"] = False
        elif key == "docker_root":
            root = rest
        elif key == "disk":
            df = DF_LINE.match(rest)
            if df and root:
                value["disk"] = {"path": root, "filesystem": df["filesystem"], "mount": df["mount"],
                                 "size_kib": int(df["size"]), "available_kib": int(df["available"])}
        elif key == "container":
            words = rest.split(" ")
            words += [""] * (7 - len(words))
            value["containers"][words[0]] = {
                "name": words[0], "service": words[1], "status": words[2], "digest": words[3],
                "image_platform": words[4], "inner_machine": words[5],
                "repo_digests": [d for d in words[6].split(",") if d],
            }
    return value
