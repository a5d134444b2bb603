"""Building and publishing multi-arch images: per platform a build where :func:`plan.choose_path` says, a push of
``REPOSITORY:TAG-ARCH``, then one manifest list under ``REPOSITORY:TAG`` (PUT through the registry API, what
`docker manifest create` + `docker manifest push` do).

Each platform's build prints a line per step (``IMAGE PLATFORM [WHERE]: step 3/7 RUN ... (12.4 s)``), keeps its
full log in a private file (:class:`engine.BuildLog`) named in any failure, and is bounded in time (fleet file
``timeouts: {build, push}``). Builds use the engine's BuildKit where a docker CLI here drives it
(archfleet.images.buildkit; ``RUN --mount=type=cache|secret`` work), else the legacy builder, which says so. The
platform's previously pushed ``REPOSITORY:TAG-ARCH`` is the registry cache: BuildKit reads it as ``--cache-from``
(its inline cache, which every BuildKit build writes); the legacy builder pulls it first and builds with it as
``cache_from``. Either way a builder that lost its layer cache (a replaced spot instance) rebuilds only the steps
after what changed.

Idempotent: each platform image carries the label ``archfleet.images.input`` (the hash of its inputs); when the
published tag lists exactly the wanted platforms and each entry's config has the expected label and platform,
nothing is built or pushed ("up to date"). Only stale platforms are rebuilt.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker.errors
import requests

from archfleet.errors import OperationFailed
from archfleet.fleet.images import ImageSpec
from archfleet.images.buildkit import (
    LEGACY_FALLBACK,
    BuildKitCli,
    engine_has_buildkit,
    find_buildkit_cli,
    private_docker_config,
)
from archfleet.images.engine import (
    BuildLog,
    BuildRequest,
    Engine,
    EngineError,
    Engines,
    StreamTimedOut,
    one_line,
)
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
from archfleet.images.progress import BuildKitStream, BuildStream, LayerStream
from archfleet.images.verify import verify_with_client
from archfleet.platforms import Platform
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
from archfleet.run import say

T = TypeVar("T")


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
    cached_steps: int = 0  # build steps that came from the layer cache (local, or the registry's)
    run_steps: int = 0  # build steps that ran
    log: Path | None = None  # the build log


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


# --- builders, timeouts, progress -------------------------------------------------------------------------------


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


DEFAULT_BUILD_TIMEOUT = 3600.0
DEFAULT_PUSH_TIMEOUT = 1800.0


@dataclass(frozen=True)
class ImageTimeouts:
    """Seconds one platform's build (with the pull of its registry cache) and one push may take."""

    build: float = DEFAULT_BUILD_TIMEOUT
    push: float = DEFAULT_PUSH_TIMEOUT

    @classmethod
    def of(cls, fleet: object) -> ImageTimeouts:
        """The fleet file's ``timeouts: {build, push}`` (each defaults when not set)."""
        timeouts = getattr(fleet, "timeouts", None)
        build, push = getattr(timeouts, "build", None), getattr(timeouts, "push", None)
        return cls(float(build) if build else DEFAULT_BUILD_TIMEOUT, float(push) if push else DEFAULT_PUSH_TIMEOUT)


_SAY_LOCK = threading.Lock()


class PlatformProgress:
    """Progress lines of one image platform, prefixed ``IMAGE PLATFORM [WHERE]:`` so that platforms building at
    the same time stay readable; each line also goes to the platform's build log."""

    def __init__(self, image: str, platform: Platform, path: BuildPath, log: BuildLog) -> None:
        self.prefix = f"{image} {platform} [{path.label}]"
        self.log = log

    def say(self, text: str) -> None:
        with _SAY_LOCK:
            say(f"{self.prefix}: {text}")
        self.log.line(text)


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
    engine = Engine()
    try:
        return engine.image_id(image)
    finally:
        engine.close()


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


def build_request(spec: ImageSpec, platform: Platform, tag: str, args: dict[str, str], label: str,
                  host_network: bool, cache_from: Sequence[str] = ()) -> BuildRequest:
    """What the engine is asked to build for one platform (pure)."""
    assert spec.context is not None and spec.dockerfile is not None
    return BuildRequest(
        context=spec.context, dockerfile=spec.dockerfile, tag=tag, platform=platform,
        build_args={**platform_build_args(spec.dockerfile.read_text(), platform), **args},
        labels={INPUT_LABEL: label, NAME_LABEL: spec.name}, host_network=host_network, cache_from=tuple(cache_from),
    )


def registry_cache_ref(client: RegistryClient, repository: str, tag: str, progress: PlatformProgress) -> str | None:
    """The platform's previously pushed image (``REPOSITORY:TAG-ARCH``), None when it is not published yet: BuildKit
    reads it as ``--cache-from`` (its inline cache) itself; the legacy builder pulls it first."""
    image = f"{client.address}/{repository}:{tag}"
    try:
        client.manifest(repository, tag)
    except NotFound:
        progress.say(f"no registry cache yet ({image} is not published)")
        return None
    return image


def pull_registry_cache(engine: Engine, client: RegistryClient, repository: str, tag: str, seconds: float,
                        progress: PlatformProgress) -> str | None:
    """Pull the platform's previously pushed image (``REPOSITORY:TAG-ARCH``) so that its layers count as build
    cache: a builder that lost its layer cache rebuilds only the steps after what changed. Returns the image to
    build with as ``cache_from`` (None: not published yet, or the pull failed, which the build then also meets)."""
    image = registry_cache_ref(client, repository, tag, progress)
    if image is None:
        return None
    error = pull_image(engine, image, seconds, progress, "registry cache")
    if error:
        progress.say(f"registry cache {image} not pulled: {error}")
        return None
    return image


def pull_image(engine: Engine, image: str, seconds: float, progress: PlatformProgress, what: str) -> str | None:
    """Pull ``image`` through the engine's API, one progress line when done; the error as one line, or None."""
    started = time.monotonic()
    layers = LayerStream()

    def on_message(message: Mapping[str, Any]) -> None:
        progress.log.message(message)
        layers.feed(message)

    try:
        engine.pull(image, seconds, on_message)
    except EngineError as error:
        layers.error = str(error)
    if layers.error:
        return layers.error
    progress.say(f"{what} {image}: {layers.summary('pulled', 'here')} ({time.monotonic() - started:.1f} s)")
    return None


def buildkit_for(engine: Engine) -> BuildKitCli | None:
    """The CLI that drives ``engine``'s BuildKit, or None (legacy builder: said once per build)."""
    cli = find_buildkit_cli()
    if cli is None or not engine_has_buildkit(engine.version()):
        return None
    return cli


def streamed(stream: BuildStream, progress: PlatformProgress,
             run: Callable[[Callable[[Mapping[str, Any]], None], Callable[[], None]], T]) -> T:
    """``run(on_message, on_tick)``, printing the progress lines ``stream`` folds the messages into (and its last
    line, however the build ends); every message also goes to the build log."""

    def on_message(message: Mapping[str, Any]) -> None:
        progress.log.message(message)
        for line in stream.feed(message, time.monotonic()):
            progress.say(line)

    def on_tick() -> None:
        for line in stream.tick(time.monotonic()):
            progress.say(line)

    try:
        return run(on_message, on_tick)
    finally:
        for line in stream.finish(time.monotonic()):
            progress.say(line)


def run_build(engine: Engine, request: BuildRequest, seconds: float, progress: PlatformProgress) -> BuildStream:
    """The legacy builder's build (the engine API's /build), one progress line per step; raises EngineError with
    the failing step's error."""
    stream = BuildStream()
    progress.log.command(request.command_line())
    streamed(stream, progress, lambda on_message, on_tick: engine.build(request, seconds, on_message, on_tick))
    if stream.error or not stream.image_id:
        raise EngineError(stream.error or "the engine ended the build without an image")
    return stream


def run_buildkit_build(engine: Engine, cli: BuildKitCli, request: BuildRequest, seconds: float,
                       progress: PlatformProgress, client: RegistryClient) -> BuildKitStream:
    """The build through the engine's BuildKit (``cli`` aimed at ``engine``), with the same progress lines; the
    registry's login reaches it in a private client config."""
    stream = BuildKitStream()
    progress.say(f"BuildKit ({cli.name})")
    with private_docker_config(client) as config:
        progress.log.command(request.buildkit_command(cli.argv, Path("IIDFILE")))
        image_id = streamed(stream, progress, lambda on_message, on_tick: engine.buildkit_build(
            request, cli.argv, config, seconds, on_message, on_tick))
    if image_id is None:
        raise EngineError(stream.error or stream.last_text or "the build failed (see the log)")
    stream.image_id = image_id
    return stream


UNTRUSTED = ("x509: certificate signed by unknown authority", "certificate is not trusted")


def buildkit_with_base(engine: Engine, cli: BuildKitCli, request: BuildRequest, base: str | None, deadline: float,
                       progress: PlatformProgress, client: RegistryClient) -> BuildKitStream:
    """A BuildKit build whose base image (the pinned ``BASE_IMAGE``) is pulled through the engine's API first: the
    engine trusts ``/etc/docker/certs.d`` on every pull, its BuildKit only as the folder was when the engine
    started (dockerd 20.10), and BuildKit takes a base that is already local. When BuildKit still meets the
    registry's certificate (the registry cache), the build runs once more without the registry cache, and says
    why."""
    if base and engine.image_id(base) is None:
        error = pull_image(engine, base, deadline - time.monotonic(), progress, "base image")
        if error:
            raise EngineError(f"pulling the base image {base}: {error}")
    try:
        return run_buildkit_build(engine, cli, request, deadline - time.monotonic(), progress, client)
    except EngineError as error:
        if not request.cache_from or not any(text in str(error) for text in UNTRUSTED):
            raise
    progress.say(f"BuildKit on this engine does not trust {client.address}'s certificate (dockerd reads "
                 "/etc/docker/certs.d for BuildKit only when it starts: restart the engine once its CA is "
                 "installed); building again without the registry cache")
    request = dataclasses.replace(request, cache_from=())
    return run_buildkit_build(engine, cli, request, deadline - time.monotonic(), progress, client)


def run_push(engine: Engine, image: str, seconds: float, progress: PlatformProgress) -> None:
    started = time.monotonic()
    layers = LayerStream()

    def on_message(message: Mapping[str, Any]) -> None:
        progress.log.message(message)
        layers.feed(message)

    engine.push(image, seconds, on_message)
    if layers.error:
        raise EngineError(layers.error)
    progress.say(f"pushed {image}: {layers.summary('pushed', 'in the registry')} "
                 f"({time.monotonic() - started:.1f} s)")


def build_and_push(spec: ImageSpec, result: PlatformResult, args: dict[str, str], client: RegistryClient,
                   pool: Engines, timeouts: ImageTimeouts = ImageTimeouts(), registry_cache: bool = True) -> None:
    """Build (or tag a local image) and push ``REPOSITORY:TAG-ARCH``; every step within its time bound. A
    failure is one line naming the build log."""
    started = time.monotonic()
    tag = f"{client.address}/{spec.repository}:{spec.platform_tag(result.platform)}"
    name = f"{spec.name} {result.platform}"
    with BuildLog(spec.name, result.platform) as log:
        result.log = log.path
        progress = PlatformProgress(spec.name, result.platform, result.path, log)
        stage = "build"
        engine: Engine | None = None
        try:
            engine = pool.engine(result.path)
            if result.path.path == PUBLISH_LOCAL:
                local = spec.local_image_for(result.platform)
                progress.say(f"pushing local image {local} as {tag}")
                engine.tag(local, tag)
                result.action = "pushed"
            else:
                progress.say(f"building {result.path.where} ({result.path.reason}); log {log.path}")
                deadline = started + timeouts.build
                cli = buildkit_for(engine)
                if cli is None:
                    progress.say(LEGACY_FALLBACK if find_buildkit_cli() is None else f"BuildKit: the engine "
                                 f"({engine.version()}) predates it: building with the legacy builder")
                if not registry_cache:
                    cache = None
                elif cli is not None:  # BuildKit reads the cache from the registry itself: nothing to pull first
                    cache = registry_cache_ref(client, spec.repository, spec.platform_tag(result.platform), progress)
                    if cache:
                        progress.say(f"registry cache: {cache} (inline cache, read by BuildKit)")
                else:
                    cache = pull_registry_cache(engine, client, spec.repository, spec.platform_tag(result.platform),
                                                deadline - time.monotonic(), progress)
                request = build_request(spec, result.platform, tag, args, result.input_hash,
                                        host_network=result.path.path == NATIVE_REMOTE,
                                        cache_from=[cache] if cache else [])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StreamTimedOut(timeouts.build)
                stream: BuildStream = (
                    buildkit_with_base(engine, cli, request, args.get(BASE_ARG), deadline, progress, client)
                    if cli is not None else run_build(engine, request, left, progress))
                result.action, result.cached_steps, result.run_steps = "built", stream.cached_steps, stream.run_steps
                progress.say(f"built in {time.monotonic() - started:.1f} s ({stream.cached_steps} of "
                             f"{stream.cached_steps + stream.run_steps} steps from the cache)")
            stage = "push"
            run_push(engine, tag, timeouts.push, progress)
        except StreamTimedOut:
            seconds = timeouts.build if stage == "build" else timeouts.push
            log.line(f"{stage} timed out after {seconds:.0f} s")
            raise OperationFailed(f"{name}: {stage} timed out after {seconds:.0f} s (log: {log.path})") from None
        except (EngineError, docker.errors.DockerException, requests.RequestException) as error:
            reason = one_line(error)
            log.line(f"{stage} failed: {reason}")
            what = f"build failed {result.path.where}" if stage == "build" else f"push of {tag} failed"
            raise OperationFailed(f"{name}: {what}: {reason} (log: {log.path})") from None
        finally:
            if engine is not None:
                engine.close()
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
                pool: Engines, dry: bool = False, timeouts: ImageTimeouts = ImageTimeouts(),
                registry_cache: bool = True) -> ImageResult:
    """Build and push every stale platform (concurrently), then publish the tag's manifest list and verify it.
    ``registry_cache=False`` builds without pulling the previous per-platform image as cache (for comparison)."""
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
            futures = [executor.submit(build_and_push, spec, r, build_args[r.platform], client, pool, timeouts,
                                       registry_cache) for r in stale]
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

