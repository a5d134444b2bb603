"""Building and publishing multi-arch images: per platform a build where :func:`plan.choose_path` says, a push of
``REPOSITORY:TAG-ARCH``, then one manifest list under ``REPOSITORY:TAG`` (PUT through the registry API, what
`docker manifest create` + `docker manifest push` do).

Idempotent: each platform image carries the label ``archfleet.images.input`` (the hash of its inputs); when the
published tag lists exactly the wanted platforms and each entry's config has the expected label and platform,
nothing is built or pushed ("up to date"). Only stale platforms are rebuilt.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from archfleet.errors import OperationFailed
from archfleet.fleet.images import ImageSpec
from archfleet.images.plan import (
    BASE_ARG,
    INPUT_LABEL,
    NAME_LABEL,
    NATIVE_REMOTE,
    PROBE_COMMAND,
    PUBLISH_LOCAL,
    Builder,
    BuildPath,
    Candidate,
    choose_path,
    context_digest,
    input_hash,
    parse_probe,
    platform_build_args,
)
from archfleet.images.verify import verify_with_client
from archfleet.platforms import Platform, UnknownPlatform, from_uname
from archfleet.registry_client import (
    NotFound,
    RegistryClient,
    config_labels,
    config_platform,
    image_size,
    index_media_type,
    manifest_list,
    parse_index,
    parse_reference,
    resolve_platform_digests,
)
from archfleet.run import run, say


@dataclass
class PlatformResult:
    image: str
    platform: Platform
    path: BuildPath
    input_hash: str
    action: str = "up to date"  # "up to date", "stale" (planned), "built", "pushed", "would build", "would push"
    digest: str | None = None
    size: int = 0  # compressed image size (config + layers)
    media_type: str = ""  # of the platform's manifest
    manifest_size: int = 0  # bytes of the platform's manifest (what an index entry's "size" is)
    seconds: float = 0.0


@dataclass
class ImageResult:
    spec: ImageSpec
    ref: str
    platforms: list[PlatformResult]
    published: bool = False  # a new manifest list was pushed
    index_digest: str | None = None

    @property
    def up_to_date(self) -> bool:
        return not self.published and all(p.action == "up to date" for p in self.platforms)


# --- builders and engines ---------------------------------------------------------------------------------------


def local_engine_platform() -> Platform | None:
    result = run(["docker", "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"], check=False)
    os_name, _, arch = result.stdout.strip().partition("/")
    try:
        return from_uname(os_name, arch) if result.returncode == 0 else None
    except UnknownPlatform:
        return None


def probe_builders(candidates: Sequence[Candidate]) -> list[Builder]:
    """Ask each inventory host (one SSH command each, concurrently) what its engine builds for."""

    def probe(candidate: Candidate) -> Builder | None:
        argv = [*candidate.builder(Platform("linux", "unknown")).ssh_argv(), PROBE_COMMAND]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except subprocess.TimeoutExpired:
            say(f"builder {candidate.name}: SSH timed out; not used")
            return None
        platform = parse_probe(result.stdout) if result.returncode == 0 else None
        if platform is None:
            reason = "no Docker engine answers" if result.returncode == 0 else "SSH failed"
            say(f"builder {candidate.name}: {reason}; not used")
            return None
        return candidate.builder(platform)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [b for b in pool.map(probe, candidates) if b is not None]


class Engines:
    """Docker engines by build path: the local one, and builder hosts' engines through SSH-forwarded sockets.

    A forward is ``ssh -NL SOCKET:/var/run/docker.sock`` with the inventory's key and known_hosts (the docker CLI's
    own ssh:// transport knows only ~/.ssh/config); it is opened on first use and closed by ``close()``.
    """

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="archfleet-engines-"))
        os.chmod(self._dir, 0o700)
        self._forwards: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self._lock = threading.Lock()
        self._builder_locks: dict[str, threading.Lock] = {}

    def env(self, path: BuildPath) -> dict[str, str]:
        """The environment for docker commands on this path's engine."""
        env = dict(os.environ)
        env.pop("DOCKER_CONTEXT", None)
        if path.path == NATIVE_REMOTE and path.builder:
            env["DOCKER_HOST"] = f"unix://{self._socket(path.builder)}"
        return env

    def _socket(self, builder: Builder) -> Path:
        with self._lock:  # one forward per builder; forwards to different builders open concurrently
            lock = self._builder_locks.setdefault(builder.name, threading.Lock())
        with lock:
            if builder.name in self._forwards:
                return self._forwards[builder.name][1]
            socket = self._dir / f"{builder.name}.sock"
            argv = builder.ssh_argv("-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=15",
                                    "-L", f"{socket}:/var/run/docker.sock")
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
            deadline = time.monotonic() + 30
            while not socket.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    error = (process.stderr.read().decode(errors="replace") if process.stderr else "").strip()
                    raise OperationFailed(f"{builder.name}: cannot forward its Docker socket over SSH: "
                                          f"{error.splitlines()[-1] if error else 'timed out'}")
                time.sleep(0.1)
            with self._lock:
                self._forwards[builder.name] = (process, socket)
            return socket

    def close(self) -> None:
        for process, socket in self._forwards.values():
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            socket.unlink(missing_ok=True)
        self._forwards.clear()
        with suppress(OSError):
            self._dir.rmdir()


@contextmanager
def engines() -> Iterator[Engines]:
    pool = Engines()
    try:
        yield pool
    finally:
        pool.close()


# --- inputs ----------------------------------------------------------------------------------------------------


class BaseNotPublished(OperationFailed):
    """The BASE_IMAGE tag is not in the registry (yet: a dry run before the base image was published)."""


def pinned_build_args(spec: ImageSpec, client: RegistryClient, platform: Platform,
                      bases: dict[str, dict[str, str]]) -> dict[str, str]:
    """The build args with ``{registry}`` filled in and a BASE_IMAGE tag in our registry pinned to the platform's
    digest (``REPO@sha256:...``): the build pulls exactly that variant, and its digest is an input. ``bases`` keeps
    each base tag's platform digests, so an image's platforms read the base's index once."""
    args = spec.resolved_build_args(client.address)
    base = args.get(BASE_ARG)
    if base:
        reference = parse_reference(base)
        if reference.registry == client.address and reference.digest is None:
            if base not in bases:
                try:
                    bases[base] = resolve_platform_digests(client, reference)
                except NotFound:
                    raise BaseNotPublished(f"{spec.name}: base image {base} is not published (list it before "
                                           f"{spec.name} in the fleet file)") from None
            digest = bases[base].get(str(platform))
            if digest is None:
                raise OperationFailed(f"{spec.name}: base image {base} has no {platform} variant")
            args[BASE_ARG] = f"{reference.registry}/{reference.repository}@{digest}"
    return args


def local_image_id(image: str) -> str | None:
    result = run(["docker", "image", "inspect", "--format", "{{.Id}}", image], check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def expected_hash(spec: ImageSpec, client: RegistryClient, platform: Platform, context_sha: str,
                  bases: dict[str, dict[str, str]]) -> tuple[str, dict]:
    """(input hash, build args) of one platform; for a local image the hash is the local image's id (its config
    digest, which is what the registry will show)."""
    if spec.local_image is not None:
        local = spec.local_image_for(platform)
        image_id = local_image_id(local)
        if image_id is None:
            raise OperationFailed(f"{spec.name}: no local image {local} (run `archfleet lab up`)")
        return image_id, {}
    assert spec.dockerfile is not None
    args = pinned_build_args(spec, client, platform, bases)
    return input_hash(context_sha, spec.dockerfile.read_bytes(), args, platform), args


@dataclass(frozen=True)
class PublishedEntry:
    digest: str
    marker: str  # the input hash label (built images) or the config digest (local images)
    size: int
    media_type: str
    manifest_size: int


def published_state(spec: ImageSpec, client: RegistryClient) -> tuple[list[Platform], dict[Platform, PublishedEntry]]:
    """What the published tag lists now: its platforms, and per platform the entry with its marker.

    The marker is read from the entry's image config (label ``archfleet.images.input``); an entry whose config
    is not the platform it is listed under gets no marker (so it is rebuilt).
    """
    try:
        top = client.manifest(spec.repository, spec.tag)
    except NotFound:
        return [], {}
    if not top.is_index:
        return [], {}
    listed, state = [], {}
    for entry in parse_index(top.json):
        if not entry.is_image or entry.platform is None:
            continue
        listed.append(entry.platform)
        manifest = client.manifest(spec.repository, entry.digest)
        config = client.config(spec.repository, manifest)
        if config_platform(config) != entry.platform:
            continue
        marker = (manifest.json.get("config") or {}).get("digest", "") if spec.local_image else config_labels(
            config).get(INPUT_LABEL, "")
        state[entry.platform] = PublishedEntry(entry.digest, marker, image_size(manifest.json), manifest.media_type,
                                               manifest.size)
    return listed, state


# --- one platform ----------------------------------------------------------------------------------------------


def docker_build_argv(spec: ImageSpec, platform: Platform, tag: str, args: dict[str, str], label: str,
                      host_network: bool) -> list[str]:
    """The `docker build` command line for one platform (pure)."""
    assert spec.context is not None and spec.dockerfile is not None
    argv = ["docker", "build", "--platform", str(platform), "-t", tag, "-f", str(spec.dockerfile),
            "--label", f"{INPUT_LABEL}={label}", "--label", f"{NAME_LABEL}={spec.name}"]
    if host_network:
        argv += ["--network", "host"]
    all_args = {**platform_build_args(spec.dockerfile.read_text(), platform), **args}
    for key in sorted(all_args):
        argv += ["--build-arg", f"{key}={all_args[key]}"]
    return [*argv, str(spec.context)]


def build_and_push(spec: ImageSpec, result: PlatformResult, args: dict[str, str], client: RegistryClient,
                   pool: Engines) -> None:
    started = time.monotonic()
    tag = f"{client.address}/{spec.repository}:{spec.platform_tag(result.platform)}"
    env = pool.env(result.path)
    prefix = f"{spec.name} {result.platform}"
    if result.path.path == PUBLISH_LOCAL:
        local = spec.local_image_for(result.platform)
        say(f"{prefix}: pushing local image {local} as {tag}")
        run(["docker", "tag", local, tag], env=env)
        result.action = "pushed"
    else:
        say(f"{prefix}: building {result.path.where} ({result.path.reason})")
        argv = docker_build_argv(spec, result.platform, tag, args, result.input_hash,
                                 host_network=result.path.path == NATIVE_REMOTE)
        build = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if build.returncode != 0:
            tail = " | ".join((build.stdout + build.stderr).strip().splitlines()[-3:])
            raise OperationFailed(f"{prefix}: `{shlex.join(argv[:6])} ...` failed {result.path.where}: {tail}")
        result.action = "built"
        say(f"{prefix}: built in {time.monotonic() - started:.0f}s; pushing {tag}")
    run(["docker", "push", tag], env=env)
    manifest = client.manifest(spec.repository, spec.platform_tag(result.platform))
    result.digest, result.size, result.media_type = manifest.digest, image_size(manifest.json), manifest.media_type
    result.manifest_size = manifest.size
    result.seconds = time.monotonic() - started


# --- one image -------------------------------------------------------------------------------------------------


def plan_image(spec: ImageSpec, client: RegistryClient, builders: Sequence[Builder], local: Platform | None,
               dry: bool = False) -> tuple[ImageResult, dict[Platform, dict[str, str]], bool]:
    """What building ``spec`` takes now: per platform its path, input hash, and whether it is up to date; and
    whether the published tag lists exactly the wanted platforms."""
    context_sha = context_digest(spec.context) if spec.context else ""
    listed, published = published_state(spec, client)
    results, build_args = [], {}
    bases: dict[str, dict[str, str]] = {}  # the base image's platform digests, read once for all platforms
    for platform in spec.platforms:
        if spec.local_image is not None:
            path = BuildPath(platform, PUBLISH_LOCAL, None, f"local image {spec.local_image_for(platform)}")
        else:
            path = choose_path(platform, builders, local)
        try:
            digest_hash, args = expected_hash(spec, client, platform, context_sha, bases)
        except BaseNotPublished:
            if not dry:
                raise
            digest_hash, args = "", {}
            path = BuildPath(platform, path.path, path.builder, f"{path.reason}; after its base image is published")
        build_args[platform] = args
        result = PlatformResult(spec.name, platform, path, digest_hash)
        current = published.get(platform)
        if current and current.marker == digest_hash:
            result.digest, result.size, result.media_type = current.digest, current.size, current.media_type
            result.manifest_size = current.manifest_size
        else:
            result.action = "stale"
        results.append(result)
    image = ImageResult(spec, spec.ref(client.address), results)
    return image, build_args, sorted(listed) == sorted(spec.platforms) and len(listed) == len(set(listed))


def build_image(spec: ImageSpec, client: RegistryClient, builders: Sequence[Builder], local: Platform | None,
                pool: Engines, dry: bool = False) -> ImageResult:
    image, build_args, listed_exactly = plan_image(spec, client, builders, local, dry)
    stale = [r for r in image.platforms if r.action == "stale"]
    index_current = not stale and listed_exactly
    if dry:
        for r in image.platforms:
            if r.action == "stale":
                tag = f"{client.address}/{spec.repository}:{spec.platform_tag(r.platform)}"
                if r.path.path == PUBLISH_LOCAL:
                    r.action = "would push"
                    say(f"{spec.name} {r.platform}: would push {r.path.reason} as {tag}")
                else:
                    r.action = "would build"
                    say(f"{spec.name} {r.platform}: would build {r.path.where} ({r.path.reason}), push {tag}")
            else:
                say(f"{spec.name} {r.platform}: up to date ({r.digest})")
        say(f"{spec.name}: " + ("up to date" if index_current else f"would publish {image.ref} "
                                 f"({', '.join(str(p) for p in spec.platforms)})"))
        return image
    if stale:
        with ThreadPoolExecutor(max_workers=len(stale)) as executor:
            futures = [executor.submit(build_and_push, spec, r, build_args[r.platform], client, pool) for r in stale]
            errors = []
            for future in futures:
                try:
                    future.result()
                except OperationFailed as error:
                    errors.append(str(error))
            if errors:
                raise OperationFailed("; ".join(errors))
    if index_current:
        say(f"{spec.name}: {image.ref} up to date")
        return image
    entries = [(r.platform, r.digest or "", r.manifest_size, r.media_type) for r in image.platforms]
    image.index_digest = client.put_manifest(spec.repository, spec.tag, manifest_list(entries),
                                             index_media_type(entries))
    image.published = True
    report = verify_with_client(client, image.ref, spec.platforms)  # prove it: read back what the tag now holds
    if not report.ok:
        raise OperationFailed(f"{spec.name}: published, but verify failed: {report.summary()}")
    say(f"{spec.name}: published {image.ref} ({', '.join(str(p) for p in spec.platforms)}), verified")
    return image

