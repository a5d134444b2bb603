"""The shipped Dockerfiles as text: the GitHub runner's platform -> release URL/sha256 choice and its checksum step
(run through a real shell), the base-image build arg, and the entrypoints' secret handling. The runner's entrypoint
is run in tests/test_github_runner_entrypoint.py and on the lab (tests/lab/test_github_runner.py)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[1] / "images"
RUNNER = (IMAGES / "github-runner" / "Dockerfile").read_text()


def runner_arch_case() -> str:
    """The `case ... esac` of the runner Dockerfile's RUN, as the shell sees it (line continuations joined)."""
    joined = RUNNER.replace("\\\n", "\n")
    match = re.search(r"^\s*RUN (case .*?esac)", joined, re.S | re.M)
    assert match, "no case statement mapping TARGETARCH in images/github-runner/Dockerfile"
    return match.group(1)


def runner_download_and_check() -> str:
    """The RUN's shell text from the `case` through the sha256 check, which must come before anything unpacks
    (continuation lines joined as Docker joins them)."""
    joined = RUNNER.replace("\\\n", "")
    match = re.search(r"^RUN (case .*?sha256sum --check --strict -)", joined, re.M)
    assert match, "no sha256sum check in the runner's RUN"
    assert "tar " not in match.group(1) and "tar -xzf" in joined[match.end(1):]
    return match.group(1)


BUILD_ARGS = {"RUNNER_URL_AMD64": "u-x64", "RUNNER_SHA256_AMD64": "s-x64",
              "RUNNER_URL_ARM64": "u-arm64", "RUNNER_SHA256_ARM64": "s-arm64"}


@pytest.mark.parametrize(("arch", "variant", "expected"), [
    ("amd64", "", "u-x64 s-x64"), ("arm64", "", "u-arm64 s-arm64"), ("arm64", "v8", "u-arm64 s-arm64"),
])
def test_runner_takes_the_url_and_sha256_of_the_platform_being_built(arch: str, variant: str, expected: str) -> None:
    result = subprocess.run(["sh", "-c", runner_arch_case() + ' && echo "$RUNNER_URL $RUNNER_SHA256"'],
                            capture_output=True, text=True,
                            env={"TARGETARCH": arch, "TARGETVARIANT": variant, **BUILD_ARGS}, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, expected)


def test_runner_refuses_an_architecture_without_a_tarball() -> None:
    result = subprocess.run(["sh", "-c", runner_arch_case()], capture_output=True, text=True,
                            env={"TARGETARCH": "s390x", "TARGETVARIANT": "", **BUILD_ARGS}, check=False)
    assert result.returncode == 1 and "no GitHub Actions runner for s390x" in result.stderr


@pytest.mark.parametrize("good", [True, False])
def test_runner_tarball_is_checked_against_its_sha256_before_unpacking(tmp_path: Path, good: bool) -> None:
    tarball = tmp_path / "release.tar.gz"
    tarball.write_bytes(b"a runner release")
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest() if good else "0" * 64
    result = subprocess.run(["sh", "-c", runner_download_and_check()], capture_output=True, text=True, check=False,
                            env={"TARGETARCH": "arm64", "TARGETVARIANT": "", "PATH": os.environ["PATH"],
                                 **BUILD_ARGS, "RUNNER_URL_ARM64": tarball.as_uri(), "RUNNER_SHA256_ARM64": digest})
    assert (result.returncode == 0) == good, result
    if not good:
        assert "FAILED" in result.stdout + result.stderr


def test_runner_without_build_args_says_which_to_set() -> None:
    result = subprocess.run(["sh", "-c", runner_download_and_check()], capture_output=True, text=True, check=False,
                            env={"TARGETARCH": "amd64", "TARGETVARIANT": "", "PATH": os.environ["PATH"]})
    assert result.returncode == 1
    assert "set the build args RUNNER_URL_AMD64 and RUNNER_SHA256_AMD64" in result.stderr


@pytest.mark.parametrize("name", sorted(p.parent.name for p in IMAGES.glob("*/Dockerfile")))  # every shipped one
def test_base_image_is_a_build_arg(name: str) -> None:
    text = (IMAGES / name / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=debian:bookworm-slim\nFROM ${BASE_IMAGE}\n" in text
    assert text.startswith("# archfleet ")  # the header comment documents the image's interface


def test_v2ray_runs_the_mounted_config() -> None:
    text = (IMAGES / "v2ray" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/bin/v2ray"]\nCMD ["-config", "/etc/v2ray/config.json"]' in text
    assert "--no-install-recommends v2ray" in text


def test_buildbot_worker_password_stays_in_its_file() -> None:
    entrypoint = (IMAGES / "buildbot-worker" / "entrypoint.sh").read_text()
    assert "create-worker" not in entrypoint  # it would take the password on its command line
    assert "passwd = secret.read().strip()" in entrypoint
    assert "BUILDBOT_WORKER_PASSWORD=" not in entrypoint
