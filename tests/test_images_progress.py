"""Build progress without an engine: the engine's recorded build/pull/push messages folded into progress lines and
counts; the stream reader's deadline (over a real socket pair standing in for the engine's connection); the
private build log; the build's time bounds from the fleet file."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from archfleet.images.build import DEFAULT_BUILD_TIMEOUT, DEFAULT_PUSH_TIMEOUT, ImageTimeouts
from archfleet.images.engine import KEEP_LOGS, BuildLog, EngineError, StreamTimedOut, split_tag, stream_messages
from archfleet.images.progress import BuildStream, LayerStream, short_instruction, stream_error
from archfleet.platforms import Platform

# What Debian's 20.10 engine sent for a rebuild with --cache-from after one COPYed file changed (times in s).
REBUILD: list[tuple[float, dict[str, Any]]] = [
    (0.10, {"stream": "Step 1/6 : ARG BASE_IMAGE=archfleet-lab/debian:bookworm-amd64"}), (0.10, {"stream": "\n"}),
    (0.10, {"stream": "Step 2/6 : FROM ${BASE_IMAGE}"}), (0.10, {"stream": "\n"}),
    (0.10, {"stream": " ---> c7aafdf4d288\n"}),
    (0.20, {"stream": "Step 3/6 : RUN apt-get update     && apt-get install -y --no-install-recommends "
                      "buildbot-worker git"}), (0.20, {"stream": "\n"}),
    (0.20, {"stream": " ---> Using cache\n"}), (0.20, {"stream": " ---> b0061a8629c6\n"}),
    (0.20, {"stream": "Step 4/6 : COPY file.txt /file.txt"}), (0.20, {"stream": "\n"}),
    (0.63, {"stream": " ---> 54eea8d95535\n"}),
    (0.63, {"stream": "Step 5/6 : RUN cat /file.txt"}), (0.63, {"stream": "\n"}),
    (0.67, {"stream": " ---> Running in aa9aab0866a2\n"}), (1.20, {"stream": "chan"}), (1.21, {"stream": "ged\n"}),
    (1.64, {"stream": "Removing intermediate container aa9aab0866a2\n"}), (1.64, {"stream": " ---> 5ad8b4d6e52e\n"}),
    (1.64, {"stream": "Step 6/6 : LABEL archfleet.images.input=h1"}), (1.64, {"stream": "\n"}),
    (1.84, {"stream": " ---> 1a86b3b41168\n"}),
    (1.84, {"aux": {"ID": "sha256:1a86b3b411685cf9b77bfcf496d75529bcc794dd3b97c1d713181550548f62c2"}}),
    (1.84, {"stream": "Successfully built 1a86b3b41168\n"}), (1.85, {"stream": "Successfully tagged x:1\n"}),
]


def fold(messages: list[tuple[float, dict[str, Any]]]) -> tuple[BuildStream, list[str]]:
    stream, lines = BuildStream(), []
    for now, message in messages:
        lines += stream.feed(message, now)
    return stream, lines + stream.finish(messages[-1][0] if messages else 0.0)


def test_a_line_per_step_with_cache_hits_and_elapsed_time() -> None:
    stream, lines = fold(REBUILD)
    assert lines == [
        "step 1/6 ARG BASE_IMAGE=archfleet-lab/debian:bookworm-amd64 (0.0 s)",
        "step 2/6 FROM ${BASE_IMAGE} (0.1 s)",
        "step 3/6 RUN apt-get update && apt-get install -y --no-install-rec... (cached)",
        "step 4/6 COPY file.txt /file.txt (0.4 s)",
        "step 5/6 RUN cat /file.txt (1.0 s)",
        "step 6/6 LABEL archfleet.images.input=h1 (0.2 s)",
    ]
    assert (stream.cached_steps, stream.run_steps) == (1, 3)  # FROM and the ARG before it are not counted
    assert stream.image_id and stream.image_id.startswith("sha256:1a86") and stream.error is None


def test_a_failing_step_ends_with_its_error() -> None:
    failing: list[tuple[float, dict[str, Any]]] = [*REBUILD[:14], (2.5, {"stream": " ---> Running in aa9aab0866a2\n"}),
               (9.0, {"errorDetail": {"code": 100, "message": "The command '/bin/sh -c cat /file.txt' returned a "
                                                              "non-zero code: 100"},
                      "error": "The command '/bin/sh -c cat /file.txt' returned a non-zero code: 100"})]
    stream, lines = fold(failing)
    assert lines[-1] == "step 5/6 RUN cat /file.txt failed after 8.4 s"
    assert stream.error == "The command '/bin/sh -c cat /file.txt' returned a non-zero code: 100"
    assert stream.image_id is None


def test_a_long_step_says_it_is_still_running_every_30_seconds() -> None:
    stream = BuildStream()
    stream.feed({"stream": "Step 3/7 : RUN make\n"}, 100.0)
    assert stream.tick(129.0) == []
    assert stream.tick(130.5) == ["step 3/7 RUN make still running (30 s)"]
    assert stream.tick(140.0) == [] and stream.tick(161.0) == ["step 3/7 RUN make still running (61 s)"]
    assert BuildStream().tick(1000.0) == []  # no step yet


def test_a_step_line_split_across_messages_and_output_lines_that_only_look_alike() -> None:
    stream = BuildStream()
    assert stream.feed({"stream": "Ste"}, 0.0) == [] and stream.feed({"stream": "p 1/2 : FROM x\n"}, 0.0) == []
    stream.feed({"stream": "Step 2/2 : RUN echo ' ---> Using cache'\n"}, 1.0)
    stream.feed({"stream": "  ---> Using cache (indented: program output)\n"}, 1.5)
    assert stream.finish(3.0) == ["step 2/2 RUN echo ' ---> Using cache' (2.0 s)"]


def test_errors_and_instructions_on_one_line() -> None:
    assert stream_error({"status": "Pushing"}) is None
    assert stream_error({"errorDetail": {"message": "unauthorized:\n authentication required"}}) == \
        "unauthorized: | authentication required"
    assert short_instruction("RUN a    b\n c") == "RUN a b c"
    assert len(short_instruction("RUN " + "x" * 100)) == 60


PUSH: list[dict[str, Any]] = [
    {"status": "The push refers to repository [172.28.81.1:5000/archfleet/v2ray]"},
    {"status": "Preparing", "progressDetail": {}, "id": "5f70bf18a086"},
    {"status": "Preparing", "progressDetail": {}, "id": "d1f2a3b4c5d6"},
    {"status": "Preparing", "progressDetail": {}, "id": "0a1b2c3d4e5f"},
    {"status": "Pushing", "progressDetail": {"current": 512, "total": 1024}, "id": "5f70bf18a086"},
    {"status": "Layer already exists", "progressDetail": {}, "id": "d1f2a3b4c5d6"},
    {"status": "Mounted from archfleet/debian", "progressDetail": {}, "id": "0a1b2c3d4e5f"},
    {"status": "Pushed", "progressDetail": {}, "id": "5f70bf18a086"},
    {"status": "4.34-arm64: digest: sha256:" + "b" * 64 + " size: 741"},
    {"progressDetail": {}, "aux": {"Tag": "4.34-arm64", "Digest": "sha256:" + "b" * 64, "Size": 741}},
]


def test_push_counts_layers_pushed_and_already_there() -> None:
    layers = LayerStream()
    for message in PUSH:
        layers.feed(message)
    assert layers.summary("pushed", "in the registry") == "1 layer pushed, 2 already in the registry"
    assert layers.digest == "sha256:" + "b" * 64 and layers.error is None
    failed = LayerStream()
    failed.feed({"errorDetail": {"message": "manifest for r/x:1 not found: manifest unknown"},
                 "error": "manifest for r/x:1 not found: manifest unknown"})
    assert failed.error == "manifest for r/x:1 not found: manifest unknown"


def test_split_tag() -> None:
    assert split_tag("172.28.81.1:5000/archfleet/v2ray:4.34-arm64") == ("172.28.81.1:5000/archfleet/v2ray",
                                                                         "4.34-arm64")
    assert split_tag("172.28.81.1:5000/archfleet/v2ray") == ("172.28.81.1:5000/archfleet/v2ray", "latest")


@pytest.fixture()
def engine_connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A socket pair standing in for the engine's HTTP connection: the test writes JSON lines on one end, the
    stream reads them from the other."""
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def json_lines(connection: socket.socket) -> Iterator[Mapping[str, Any]]:
    for line in connection.makefile("r"):
        yield json.loads(line)


def test_stream_gives_every_message_then_returns(engine_connection: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = engine_connection
    theirs.sendall(b'{"stream": "Step 1/1 : FROM x\\n"}\n{"aux": {"ID": "sha256:1"}}\n')
    theirs.shutdown(socket.SHUT_WR)
    seen: list[Mapping[str, Any]] = []
    stream_messages(lambda: json_lines(ours), 10, seen.append)
    assert seen == [{"stream": "Step 1/1 : FROM x\n"}, {"aux": {"ID": "sha256:1"}}]


def test_stream_past_its_deadline_cuts_the_connection(engine_connection: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = engine_connection
    theirs.sendall(b'{"stream": "Step 1/1 : RUN sleep 600\\n"}\n')  # then nothing: a silent step
    seen: list[Mapping[str, Any]] = []
    started = time.monotonic()
    with pytest.raises(StreamTimedOut, match="timed out after 1 s"):
        stream_messages(lambda: json_lines(ours), 1, seen.append, cut_off=lambda: ours.shutdown(socket.SHUT_RDWR))
    assert time.monotonic() - started < 5 and seen == [{"stream": "Step 1/1 : RUN sleep 600\n"}]
    assert theirs.recv(1) == b""  # the engine's side sees the client gone (that is what cancels the build)
    assert not [t for t in threading.enumerate() if t.name == "docker-stream"]


def test_stream_error_is_one_line() -> None:
    def failing() -> Iterator[Mapping[str, Any]]:
        yield {"status": "Pulling"}
        raise ConnectionError("Connection aborted.\nRemoteDisconnected('closed')")

    with pytest.raises(EngineError, match=r"^Connection aborted\. \| RemoteDisconnected\('closed'\)$"):
        stream_messages(failing, 10, lambda message: None)


def test_build_log_is_private_and_old_logs_are_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    directory = tmp_path / "archfleet" / "builds"
    directory.mkdir(parents=True, mode=0o755)
    for n in range(KEEP_LOGS + 3):
        (directory / f"v2ray-arm64-20200101T0000{n:02d}Z.log").write_text("old")
    (directory / "v2ray-amd64-20200101T000000Z.log").write_text("other arch")
    with BuildLog("v2ray", Platform("linux", "arm64")) as log:
        log.message({"stream": "Step 1/2 : FROM x\n"})
        log.message({"status": "Pushed", "id": "5f70bf18a086"})
        log.message({"status": "Pushing", "id": "5f70bf18a086", "progress": "[====>  ] 512B/1kB"})
        log.message({"error": "boom"})
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    assert log.path.name.startswith("v2ray-arm64-") and log.path.read_text() == \
        "Step 1/2 : FROM x\n5f70bf18a086: Pushed\nERROR: boom\n"
    assert len(list(directory.glob("v2ray-arm64-*.log"))) == KEEP_LOGS
    assert log.path.exists() and (directory / "v2ray-amd64-20200101T000000Z.log").exists()
    assert not (directory / "v2ray-arm64-20200101T000000Z.log").exists()  # the oldest went


def test_time_bounds_from_the_fleet_file() -> None:
    assert ImageTimeouts.of(SimpleNamespace()) == ImageTimeouts(DEFAULT_BUILD_TIMEOUT, DEFAULT_PUSH_TIMEOUT)
    fleet = SimpleNamespace(timeouts=SimpleNamespace(build=600, push=None))
    assert ImageTimeouts.of(fleet) == ImageTimeouts(600.0, DEFAULT_PUSH_TIMEOUT)
    assert (DEFAULT_BUILD_TIMEOUT, DEFAULT_PUSH_TIMEOUT) == (3600, 1800)
