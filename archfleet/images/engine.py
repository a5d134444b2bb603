"""Docker engines through their API (the ``docker`` SDK): builds, pulls and pushes with streamed progress, each
bounded in time, and the one place that says what a build asks the engine to do (:class:`BuildRequest`).

Builds go through BuildKit where the engine and a docker CLI here have it (:meth:`Engine.buildkit_build`, the CLI
aimed at the engine's socket: archfleet.images.buildkit says which CLI), since the SDK drives only the legacy
builder; the legacy ``/build`` remains the fallback. Pulls and pushes go through the SDK: its messages are JSON
(per-layer status, errors) instead of text meant for a terminal. A deadline cancels work on the engine by closing
the connection (the engine stops a build or push whose client has gone; for BuildKit, the CLI is killed).

Builder hosts' engines are reached through an SSH-forwarded socket (:class:`Engines`), opened with the
inventory's key and known_hosts: the SDK's own ``ssh://`` transport knows only ``~/.ssh/config`` and the system's
known hosts.
"""

from __future__ import annotations

import os
import queue
import shlex
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import requests

from archfleet.errors import OperationFailed
from archfleet.images.plan import NATIVE_REMOTE, Builder, BuildPath
from archfleet.platforms import Platform, UnknownPlatform, from_uname
from archfleet.user_cache import user_cache_dir

READ_TIMEOUT = 300  # seconds one read of a non-streamed API answer may take
TICK = 5.0  # seconds between checks of a stream's deadline and its "still running" lines
KEEP_LOGS = 20  # build logs kept per image and architecture


class EngineError(OperationFailed):
    """The engine refused or failed an operation (the message is the engine's, on one line)."""


class StreamTimedOut(OperationFailed):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:.0f} s")
        self.seconds = seconds


@dataclass(frozen=True)
class BuildRequest:
    """One platform's build as the engine is asked for it. :meth:`api_arguments` is what the SDK's
    ``APIClient.build`` gets; :meth:`command_line` is the same build as a ``docker build`` a person can repeat (it
    heads the build log)."""

    context: Path
    dockerfile: Path
    tag: str
    platform: Platform
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    host_network: bool = False  # engines without a bridge (the lab's arm64 host)
    cache_from: tuple[str, ...] = ()  # images (pulled first) whose layers count as cache

    def api_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "path": str(self.context), "dockerfile": str(self.dockerfile), "tag": self.tag,
            "platform": str(self.platform), "buildargs": dict(sorted(self.build_args.items())),
            "labels": dict(sorted(self.labels.items())), "cache_from": list(self.cache_from),
            "rm": True, "forcerm": True, "pull": False, "decode": True,
        }
        if self.host_network:
            arguments["network_mode"] = "host"
        return arguments

    def buildkit_command(self, build: tuple[str, ...], iidfile: Path) -> list[str]:
        """The same build through BuildKit (``build`` is ``docker build`` with DOCKER_BUILDKIT=1, or ``docker
        buildx build``): plain progress, the image id written to ``iidfile``, and the registry cache read by
        BuildKit itself (``--cache-from`` an image built with inline cache, which this build writes too)."""
        argv = [*build, "--progress=plain", "--iidfile", str(iidfile), "--build-arg", "BUILDKIT_INLINE_CACHE=1"]
        return [*argv, *self.command_line()[2:]]

    def command_line(self) -> list[str]:
        argv = ["docker", "build", "--platform", str(self.platform), "-t", self.tag, "-f", str(self.dockerfile)]
        for key, value in sorted(self.labels.items()):
            argv += ["--label", f"{key}={value}"]
        if self.host_network:
            argv += ["--network", "host"]
        for image in self.cache_from:
            argv += ["--cache-from", image]
        for key, value in sorted(self.build_args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        return [*argv, str(self.context)]


def split_tag(image: str) -> tuple[str, str]:
    """``REGISTRY:PORT/REPO:TAG`` -> (``REGISTRY:PORT/REPO``, ``TAG``); no tag means ``latest``; a digest reference
    ``REPO@sha256:...`` -> (``REPO``, ``sha256:...``), which the engine's pull reads as the digest."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, digest
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return image, "latest"
    return name, tag


class Engine:
    """One Docker engine's API, used by one thread at a time. Streamed calls (build, pull, push) run under a
    deadline: when it passes, the connection is shut down, which makes the engine cancel the work."""

    def __init__(self, base_url: str | None = None) -> None:
        settings: dict[str, Any] = {"base_url": base_url} if base_url else docker.utils.kwargs_from_env()
        self.base_url = base_url  # None: the environment's engine (DOCKER_HOST, else the local socket)
        try:
            self.api = docker.APIClient(version="auto", timeout=READ_TIMEOUT, **settings)
        except docker.errors.DockerException as error:
            raise EngineError(f"no Docker engine answers at {base_url or 'the local socket'}: "
                              f"{one_line(error)}") from None
        self._responses: list[requests.Response] = []
        self.api.hooks["response"].append(self._remember)

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._responses[:] = [response]  # the newest answer: the stream being read

    def _cut_off(self) -> None:
        """Shut down the connection of the stream being read (its reader gets end-of-stream)."""
        for response in self._responses:
            connection = getattr(response.raw, "connection", None)
            with suppress(OSError, AttributeError):
                connection.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]

    def close(self) -> None:
        self.api.close()

    def platform(self) -> Platform | None:
        version = self.api.version()
        try:
            return from_uname(str(version.get("Os", "")), str(version.get("Arch", "")))
        except UnknownPlatform:
            return None

    def image_id(self, image: str) -> str | None:
        try:
            return str(self.api.inspect_image(image)["Id"])
        except docker.errors.ImageNotFound:
            return None

    def tag(self, source: str, target: str) -> None:
        repository, tag = split_tag(target)
        self.api.tag(source, repository, tag)

    def stream(self, start: Callable[[], Iterable[Mapping[str, Any]]], seconds: float,
               on_message: Callable[[Mapping[str, Any]], None], on_tick: Callable[[], None] | None = None) -> None:
        """:func:`stream_messages` of an SDK call (``stream=True, decode=True``) on this engine's connection."""
        stream_messages(start, seconds, on_message, on_tick, cut_off=self._cut_off)

    def build(self, request: BuildRequest, seconds: float, on_message: Callable[[Mapping[str, Any]], None],
              on_tick: Callable[[], None] | None = None) -> None:
        self.stream(lambda: self.api.build(**request.api_arguments()), seconds, on_message, on_tick)

    def version(self) -> str:
        return str(self.api.version().get("Version", ""))

    def buildkit_build(self, request: BuildRequest, build: tuple[str, ...], docker_config: Path, seconds: float,
                       on_message: Callable[[Mapping[str, Any]], None],
                       on_tick: Callable[[], None] | None = None) -> str | None:
        """Build with BuildKit through the docker CLI ``build`` aimed at this engine; each output line is given to
        ``on_message`` as ``{"stream": line}``. Returns the image id (None: the build failed). Past ``seconds`` the
        CLI is killed, which ends its session: BuildKit cancels the build."""
        env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": str(docker_config), "BUILDKIT_COLORS": "",
               "NO_COLOR": "1"}
        if self.base_url:
            env["DOCKER_HOST"] = self.base_url
        with tempfile.TemporaryDirectory(prefix="archfleet-build-") as folder:
            iidfile = Path(folder) / "iid"
            process = subprocess.Popen(request.buildkit_command(build, iidfile), stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                                       errors="replace")

            def lines() -> Iterator[Mapping[str, Any]]:
                assert process.stdout is not None
                for line in process.stdout:
                    yield {"stream": line}

            try:
                stream_messages(lines, seconds, on_message, on_tick, cut_off=process.kill)
            finally:
                if process.poll() is None:
                    process.kill()
                code = process.wait()
            return iidfile.read_text().strip() if code == 0 and iidfile.exists() else None

    def pull(self, image: str, seconds: float, on_message: Callable[[Mapping[str, Any]], None]) -> None:
        repository, tag = split_tag(image)
        self.stream(lambda: self.api.pull(repository, tag, stream=True, decode=True), seconds, on_message)

    def push(self, image: str, seconds: float, on_message: Callable[[Mapping[str, Any]], None]) -> None:
        repository, tag = split_tag(image)
        self.stream(lambda: self.api.push(repository, tag, stream=True, decode=True), seconds, on_message)


def stream_messages(start: Callable[[], Iterable[Mapping[str, Any]]], seconds: float,
                    on_message: Callable[[Mapping[str, Any]], None], on_tick: Callable[[], None] | None = None,
                    cut_off: Callable[[], None] = lambda: None) -> None:
    """Read the messages of ``start()`` in a reader thread, give each to ``on_message`` and call ``on_tick``
    every few seconds, for at most ``seconds``: then ``cut_off()`` (which must end the reader's blocking read)
    and raise StreamTimedOut. A failing call raises EngineError with its error on one line."""
    messages: queue.Queue[Mapping[str, Any] | BaseException | None] = queue.Queue()

    def read() -> None:
        try:
            for message in start():
                messages.put(message)
        except Exception as error:  # the SDK's and the HTTP stack's errors: reported by the consumer
            messages.put(error)
        messages.put(None)

    deadline = time.monotonic() + seconds
    next_tick = time.monotonic() + TICK
    reader = threading.Thread(target=read, name="docker-stream", daemon=True)
    reader.start()
    while True:
        now = time.monotonic()
        if now >= deadline:
            cut_off()
            reader.join(timeout=10)
            raise StreamTimedOut(seconds)
        if now >= next_tick:
            next_tick = now + TICK
            if on_tick is not None:
                on_tick()
        try:
            item = messages.get(timeout=max(0.0, min(deadline, next_tick) - now))
        except queue.Empty:
            continue
        if item is None:
            return
        if isinstance(item, BaseException):
            raise EngineError(one_line(item)) from None
        on_message(item)


def one_line(error: BaseException) -> str:
    """An SDK or HTTP error as one line: the engine's explanation when it gave one."""
    text = str(getattr(error, "explanation", None) or error) or type(error).__name__
    return " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def local_engine_platform() -> Platform | None:
    """What the local engine builds for natively (None: no engine answers)."""
    try:
        engine = Engine()
    except EngineError:
        return None
    try:
        return engine.platform()
    except (docker.errors.DockerException, requests.RequestException):
        return None
    finally:
        engine.close()


class Engines:
    """Docker engines by build path: the local one, and builder hosts' engines through SSH-forwarded sockets.

    A forward is ``ssh -NL SOCKET:/var/run/docker.sock`` with the inventory's key and known_hosts; it is opened on
    first use (one per builder, shared by that builder's platforms) and closed by ``close()``. Each call of
    :meth:`engine` gives a fresh API client: one per thread.
    """

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="archfleet-engines-"))
        os.chmod(self._dir, 0o700)
        self._forwards: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self._lock = threading.Lock()
        self._builder_locks: dict[str, threading.Lock] = {}

    def engine(self, path: BuildPath) -> Engine:
        if path.path == NATIVE_REMOTE and path.builder:
            return Engine(f"unix://{self._socket(path.builder)}")
        return Engine()

    def _socket(self, builder: Builder) -> Path:
        with self._lock:  # one forward per builder; forwards to different builders open concurrently
            lock = self._builder_locks.setdefault(builder.name, threading.Lock())
        with lock:
            if builder.name in self._forwards:
                return self._forwards[builder.name][1]
            path = self._dir / f"{builder.name}.sock"
            argv = builder.ssh_argv("-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=15",
                                    "-L", f"{path}:/var/run/docker.sock")
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
            deadline = time.monotonic() + 30
            while not path.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    error = (process.stderr.read().decode(errors="replace") if process.stderr else "").strip()
                    raise OperationFailed(f"{builder.name}: cannot forward its Docker socket over SSH: "
                                          f"{error.splitlines()[-1] if error else 'timed out'}")
                time.sleep(0.1)
            with self._lock:
                self._forwards[builder.name] = (process, path)
            return path

    def close(self) -> None:
        for process, path in self._forwards.values():
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            path.unlink(missing_ok=True)
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


# --- build logs ------------------------------------------------------------------------------------------------


def build_log_dir() -> Path:
    """``$XDG_CACHE_HOME/archfleet/builds`` (default ``~/.cache/archfleet/builds``), private to the user."""
    directory = Path(user_cache_dir("builds"))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    return directory


class BuildLog:
    """The full log of one platform's build and push, in a new 0600 file ``IMAGE-ARCH-TIMESTAMP.log``."""

    def __init__(self, image: str, platform: Platform) -> None:
        directory = build_log_dir()
        arch = "-".join(p for p in (platform.architecture, platform.variant) if p)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for attempt in range(100):
            self.path = directory / f"{image}-{arch}-{stamp}{f'-{attempt}' if attempt else ''}.log"
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                continue
        else:
            raise OperationFailed(f"{directory}: cannot create a build log for {image} {platform}")
        self._file: IO[str] = os.fdopen(fd, "w", encoding="utf-8", errors="replace")
        for old in sorted(directory.glob(f"{image}-{arch}-*.log"))[:-KEEP_LOGS]:
            old.unlink(missing_ok=True)

    def write(self, text: str) -> None:
        self._file.write(text)
        self._file.flush()

    def line(self, text: str) -> None:
        self.write(f"# {datetime.now(UTC).strftime('%H:%M:%S')} {text}\n")

    def message(self, message: Mapping[str, Any]) -> None:
        """An engine message as a terminal would show it: build text as is, pull/push status one per line."""
        if isinstance(message.get("stream"), str):
            self.write(str(message["stream"]))
        elif message.get("error") or message.get("errorDetail"):
            self.write(f"ERROR: {message.get('error') or message.get('errorDetail')}\n")
        elif message.get("status"):
            layer = f"{message['id']}: " if message.get("id") else ""
            progress = f" {message['progress']}" if message.get("progress") else ""
            if not progress or message.get("status") not in ("Pushing", "Downloading", "Extracting"):
                self.write(f"{layer}{message['status']}{progress}\n")
        elif isinstance(message.get("aux"), Mapping):
            self.write(f"{dict(message['aux'])}\n")

    def command(self, argv: list[str]) -> None:
        self.line(f"$ {shlex.join(argv)}")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> BuildLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
