"""Which docker CLI drives an engine's BuildKit here, and the private client config a BuildKit build reads.

BuildKit is in every engine since 18.09 (built in; 20.10 is Debian 12's). The Docker SDK drives only the legacy
builder (docker-py#2230), so BuildKit builds go through a docker CLI pointed at the engine's API socket (the local
one, or a builder host's, forwarded over SSH: archfleet.images.engine.Engines):

- ``docker buildx build`` where the buildx plugin is installed (Docker Desktop, Debian 13's docker-buildx);
- else a docker CLI older than 23 with ``DOCKER_BUILDKIT=1`` (Debian 12's 20.10 at /usr/bin/docker); a 23+ CLI
  without buildx refuses that ("the buildx component is missing");
- else none: builds fall back to the legacy builder, and say so.

The CLI's registry credentials (BuildKit pulls the ``FROM`` image and the registry cache itself, through the
CLI's session) come from a private ``DOCKER_CONFIG`` folder (0700, its config.json 0600), never from argv.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from archfleet.registry_client import RegistryClient

MIN_ENGINE = (18, 9)  # the first engine with BuildKit built in
LEGACY_FALLBACK = ("BuildKit: no docker CLI here drives it (no buildx plugin, and a docker CLI 23+ refuses "
                   "DOCKER_BUILDKIT=1 without it): building with the legacy builder, where RUN --mount, "
                   "COPY --link and heredocs fail. Install docker-buildx (or Debian's docker.io CLI) to use BuildKit")


@dataclass(frozen=True)
class BuildKitCli:
    """A docker CLI that builds with BuildKit: ``argv`` starts a build (``docker build`` or ``docker buildx
    build``); ``name`` says which, for the progress lines."""

    argv: tuple[str, ...]
    name: str
    buildx: bool


def version_tuple(text: str) -> tuple[int, ...]:
    """``20.10.24+dfsg1`` -> (20, 10, 24); anything unreadable -> ()."""
    parts = []
    for part in text.strip().lstrip("v").split("+")[0].split("-")[0].split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def engine_has_buildkit(engine_version: str) -> bool:
    return version_tuple(engine_version)[:2] >= MIN_ENGINE


def _run(argv: list[str]) -> str | None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False,
                                env={**os.environ, "DOCKER_CLI_HINTS": "false"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def candidate_clis() -> list[str]:
    """Every docker CLI here, the one on PATH first, each once."""
    found: list[str] = []
    for path in (shutil.which("docker"), "/usr/bin/docker", "/usr/local/bin/docker"):
        if path and os.access(path, os.X_OK) and os.path.realpath(path) not in map(os.path.realpath, found):
            found.append(path)
    return found


@functools.cache
def find_buildkit_cli() -> BuildKitCli | None:
    """The docker CLI that drives BuildKit here (asked once per process): buildx first, then a CLI < 23."""
    clis = candidate_clis()
    for cli in clis:
        version = _run([cli, "buildx", "version"])
        if version:
            return BuildKitCli((cli, "buildx", "build"), f"buildx {version.split()[1] if ' ' in version else ''}"
                               .strip(), True)
    for cli in clis:
        version = _run([cli, "version", "--format", "{{.Client.Version}}"]) or ""
        if version and version_tuple(version)[:1] < (23,):
            return BuildKitCli((cli, "build"), f"docker {version} with DOCKER_BUILDKIT=1", False)
    return None


def docker_config_json(client: RegistryClient) -> dict[str, object]:
    """A docker client config that logs in to ``client``'s registry with its credentials."""
    credentials = client.credentials
    if credentials is None:
        return {"auths": {}}
    if credentials.identity_token:
        entry = {"identitytoken": credentials.secret}
    else:
        entry = {"auth": base64.b64encode(f"{credentials.username}:{credentials.secret}".encode()).decode()}
    return {"auths": {client.address: entry}}


@contextmanager
def private_docker_config(client: RegistryClient) -> Iterator[Path]:
    """A DOCKER_CONFIG folder for one build: the registry's login, and the user's CLI plugins (buildx lives
    there), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="archfleet-docker-config-"))  # mkdtemp: mode 0700
    try:
        fd = os.open(folder / "config.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(docker_config_json(client), handle)
        user_config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
        if (user_config / "cli-plugins").is_dir():
            (folder / "cli-plugins").symlink_to(user_config / "cli-plugins")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
