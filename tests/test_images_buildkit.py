"""BuildKit builds without an engine: the plain progress of the 20.10 CLI folded into steps (recorded output),
the command line a build runs, the private client config it reads, and which CLI drives BuildKit."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from archfleet.images import buildkit
from archfleet.images.buildkit import BuildKitCli, docker_config_json, engine_has_buildkit, private_docker_config
from archfleet.images.engine import BuildRequest
from archfleet.images.progress import BuildKitStream
from archfleet.platforms import Platform
from archfleet.registry_client import RegistryClient

# `DOCKER_BUILDKIT=1 /usr/bin/docker build --progress=plain` (20.10.24), recorded on the lab machine; sha256 lines cut.
BUILT = """\
#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 218B done
#1 DONE 0.0s

#4 [stage-0 1/4] FROM docker.io/archfleet-lab/debian:bookworm-amd64
#4 DONE 0.0s

#5 [stage-0 2/4] RUN --mount=type=cache,target=/cache echo $(date) >> /cache/log
#7 [stage-0 3/4] COPY a.txt /a.txt
#7 CACHED

#5 0.301 a line the step printed
#5 DONE 0.3s

#8 [stage-0 4/4] RUN uname -m > /arch
#8 DONE 1.5s

#9 exporting to image
#9 writing image sha256:f0a690ca40566b71befeeea7f632189e7df813363738ced8f77efb4e548fedc0 done
#9 DONE 0.0s
"""

FAILED = """\
#4 [1/2] FROM docker.io/archfleet-lab/debian:bookworm-amd64
#4 DONE 0.0s

#5 [2/2] RUN false
#5 ERROR: executor failed running [/bin/sh -c false]: exit code: 1
------
 > [2/2] RUN false:
------
executor failed running [/bin/sh -c false]: exit code: 1
"""

FRONTEND_REFUSED = """\
#2 [internal] load .dockerignore
#2 DONE 0.0s
failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 3: \
Unknown flag: link
"""


def fold(text: str, chunk: int = 7) -> tuple[BuildKitStream, list[str]]:
    """Feed ``text`` in small pieces (lines arrive split), one second apart; the lines printed."""
    stream, printed = BuildKitStream(), []
    for index in range(0, len(text), chunk):
        printed += stream.feed({"stream": text[index:index + chunk]}, float(index))
    printed += stream.finish(float(len(text)))
    return stream, printed


def test_steps_are_reported_once_each_in_the_order_they_finish() -> None:
    stream, printed = fold(BUILT)
    assert printed == [
        "step 1/4 FROM docker.io/archfleet-lab/debian:bookworm-amd64 (0.0 s)",
        "step 3/4 COPY a.txt /a.txt (cached)",
        "step 2/4 RUN --mount=type=cache,target=/cache echo $(date) >> /cac... (0.3 s)",  # cut at 60
        "step 4/4 RUN uname -m > /arch (1.5 s)",
    ]
    assert (stream.cached_steps, stream.run_steps) == (1, 2)  # FROM is no step that a cache can give
    assert stream.error is None


def test_a_failed_step_is_named_with_its_error() -> None:
    stream, printed = fold(FAILED)
    assert printed[-1].startswith("step 2/2 RUN false failed after")
    assert stream.error == "executor failed running [/bin/sh -c false]: exit code: 1"


def test_a_frontend_refusal_is_the_cli_s_last_line() -> None:
    stream, printed = fold(FRONTEND_REFUSED)
    assert printed == [] and stream.error is None
    assert stream.last_text is not None and stream.last_text.endswith("Unknown flag: link")


def test_a_long_step_says_it_is_still_running() -> None:
    stream = BuildKitStream()
    stream.feed({"stream": "#5 [2/2] RUN sleep 300\n"}, 0.0)
    assert stream.tick(10.0) == []
    assert stream.tick(31.0) == ["step 2/2 RUN sleep 300 still running (31 s)"]


def test_the_buildkit_command_is_the_legacy_one_plus_progress_iidfile_and_inline_cache(tmp_path: Path) -> None:
    request = BuildRequest(tmp_path, tmp_path / "Dockerfile", "reg:5000/app:1-arm64", Platform("linux", "arm64"),
                           {"A": "1"}, {"l": "v"}, host_network=True, cache_from=("reg:5000/app:1-arm64",))
    argv = request.buildkit_command(("/usr/bin/docker", "build"), tmp_path / "iid")
    assert argv == ["/usr/bin/docker", "build", "--progress=plain", "--iidfile", str(tmp_path / "iid"),
                    "--build-arg", "BUILDKIT_INLINE_CACHE=1", *request.command_line()[2:]]
    assert argv[-1] == str(tmp_path) and "--network" in argv and "--cache-from" in argv


def test_the_registry_login_goes_to_a_private_config_never_argv() -> None:
    client = RegistryClient("reg.example:5000", "bob", "pa55")
    assert docker_config_json(client) == {"auths": {"reg.example:5000": {"auth": "Ym9iOnBhNTU="}}}
    with private_docker_config(client) as folder:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        config = folder / "config.json"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert json.loads(config.read_text())["auths"]["reg.example:5000"]["auth"] == "Ym9iOnBhNTU="
    assert not folder.exists()
    assert docker_config_json(RegistryClient("reg.example:5000")) == {"auths": {}}


@pytest.mark.parametrize(("version", "has"), [("20.10.24+dfsg1", True), ("18.09.0", True), ("18.06.3-ce", False),
                                              ("28.1.1", True), ("", False)])
def test_engines_from_18_09_have_buildkit(version: str, has: bool) -> None:
    assert engine_has_buildkit(version) is has


def test_buildx_first_then_a_cli_older_than_23(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {("/usr/local/bin/docker", "buildx", "version"): None,
               ("/usr/bin/docker", "buildx", "version"): None,
               ("/usr/local/bin/docker", "version", "--format", "{{.Client.Version}}"): "28.1.1",
               ("/usr/bin/docker", "version", "--format", "{{.Client.Version}}"): "20.10.24+dfsg1"}
    monkeypatch.setattr(buildkit, "candidate_clis", lambda: ["/usr/local/bin/docker", "/usr/bin/docker"])
    monkeypatch.setattr(buildkit, "_run", lambda argv: answers[tuple(argv)])
    buildkit.find_buildkit_cli.cache_clear()
    try:
        assert buildkit.find_buildkit_cli() == BuildKitCli(("/usr/bin/docker", "build"),
                                                           "docker 20.10.24+dfsg1 with DOCKER_BUILDKIT=1", False)
        answers[("/usr/local/bin/docker", "buildx", "version")] = "github.com/docker/buildx 0.13.1 abc"
        buildkit.find_buildkit_cli.cache_clear()
        assert buildkit.find_buildkit_cli() == BuildKitCli(("/usr/local/bin/docker", "buildx", "build"),
                                                           "buildx 0.13.1", True)
        answers[("/usr/local/bin/docker", "buildx", "version")] = None
        answers[("/usr/bin/docker", "version", "--format", "{{.Client.Version}}")] = "24.0.7"
        buildkit.find_buildkit_cli.cache_clear()
        assert buildkit.find_buildkit_cli() is None  # the legacy builder, which says so
    finally:
        buildkit.find_buildkit_cli.cache_clear()


def test_a_digest_reference_pulls_by_digest() -> None:
    from archfleet.images.engine import split_tag

    assert split_tag("reg:5000/archfleet/debian@sha256:abc") == ("reg:5000/archfleet/debian", "sha256:abc")
