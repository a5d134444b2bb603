"""The shipped Dockerfiles as text: the GitHub runner's platform -> tarball architecture mapping (run through a
real shell), the base-image build arg, and the entrypoints' secret handling."""

from __future__ import annotations

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


@pytest.mark.parametrize(("arch", "variant", "expected"), [
    ("amd64", "", "x64"), ("arm64", "", "arm64"), ("arm64", "v8", "arm64"), ("arm", "v7", "arm"),
])
def test_runner_maps_docker_platform_to_tarball_arch(arch: str, variant: str, expected: str) -> None:
    result = subprocess.run(["sh", "-c", runner_arch_case() + ' && echo "$RUNNER_ARCH"'], capture_output=True,
                            text=True, env={"TARGETARCH": arch, "TARGETVARIANT": variant}, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, expected)


def test_runner_refuses_an_architecture_without_a_tarball() -> None:
    result = subprocess.run(["sh", "-c", runner_arch_case()], capture_output=True, text=True,
                            env={"TARGETARCH": "s390x", "TARGETVARIANT": ""}, check=False)
    assert result.returncode == 1 and "no GitHub Actions runner for s390x" in result.stderr


def test_runner_downloads_the_mapped_tarball_and_declares_the_platform_args() -> None:
    assert "ARG TARGETARCH" in RUNNER and "ARG TARGETVARIANT" in RUNNER
    assert "actions-runner-linux-${RUNNER_ARCH}-${RUNNER_VERSION}.tar.gz" in RUNNER


def test_runner_entrypoint_registers_ephemeral_from_a_token_file_and_deregisters_on_stop() -> None:
    entrypoint = (IMAGES / "github-runner" / "entrypoint.sh").read_text()
    assert "--ephemeral" in entrypoint and 'cat "$token_file"' in entrypoint
    assert re.search(r"^trap '.*deregister.*' TERM INT$", entrypoint, re.M)
    assert "RUNNER_TOKEN=" not in entrypoint and "ENV RUNNER_TOKEN" not in RUNNER


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
