"""The GitHub Actions runner in a lab test's fleet file: the stand-in GitHub (tests/standins/github_api.py) started on
the lab gateway with a fine-grained token kept as a root-only file, the runner image's `images:` entry (built from
the stand-in release, its URL and sha256 as build args) and a runner service's entry. Shared by the runner's own lab
test and the spot interruption test, so that both name the same image: `archfleet images build` builds it only when
the lab registry lacks it (or its inputs changed).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.lab.support import PROJECT
from tests.standins.github_api import RELEASE_PATH, GitHubStandin

STANDIN_PORT = 18413  # fixed, so the image's build args (the release URL) stay the same and its build is cached


@contextmanager
def github_standin(address: str, directory: Path) -> Iterator[tuple[GitHubStandin, Path]]:
    """The stand-in GitHub on ``address``:STANDIN_PORT, and the file (0600) holding the fine-grained token it
    accepts; stopped on the way out."""
    pat = f"github_pat_{secrets.token_hex(20)}"
    token_file = directory / "github-token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(pat + "\n")
    standin = GitHubStandin(address, STANDIN_PORT, pat).start()
    try:
        yield standin, token_file
    finally:
        standin.stop()


def runner_image(standin: GitHubStandin) -> str:
    """The `images:` entry of the runner image, built from the stand-in release."""
    release = standin.url + RELEASE_PATH
    return ("  github-runner: {context: PROJECT/images/github-runner, repository: archfleet-test/github-runner,\n"
            "    tag: standin, build_args: {BASE_IMAGE: '{registry}/archfleet/debian:bookworm',\n"
            f"      RUNNER_URL_AMD64: '{release}', RUNNER_SHA256_AMD64: '{standin.release_sha256}',\n"
            f"      RUNNER_URL_ARM64: '{release}', RUNNER_SHA256_ARM64: '{standin.release_sha256}'}}}}\n"
            ).replace("PROJECT", str(PROJECT))


def runner_service(name: str, groups: str, network: str, standin: GitHubStandin, token_file: Path, labels: str,
                   runner_name: str | None = None, stop_order: int = 10) -> str:
    """A `services:` entry running the runner image against the stand-in's repository `archfleet/demo`, the token
    mounted root-only (0400 0:0: the entrypoint reads it as root; the runner's user and its jobs cannot).
    ``runner_name`` None: the entrypoint names the runner after the container's hostname (a service that renders
    per host, e.g. ``{{ host.name }}``, cannot start from a spot fleet's user-data)."""
    name_line = f"      RUNNER_NAME: {runner_name}\n" if runner_name is not None else ""
    return f"""\
  {name}:
    image: github-runner
    groups: [{groups}]
    network: {network}
    environment:
      GITHUB_URL: {standin.url}/archfleet/demo
      GITHUB_API_URL: {standin.url}/api/v3
{name_line}      RUNNER_LABELS: {labels}
    secrets:
      github_token: {{file: {token_file}, mount: /run/secrets/github-token, mode: "0400"}}
    stop_order: {stop_order}
"""
