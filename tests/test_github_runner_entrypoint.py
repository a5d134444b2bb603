"""The GitHub runner image's entrypoint (images/github-runner/entrypoint.sh), run here as a process against the
stand-in GitHub (tests/standins/github_api.py) on loopback and the stand-in runner release unpacked beside it, as
the image lays them out. The lab test (tests/lab/test_github_runner.py) runs the same inside the built image on both
architectures; this one covers the ways to authenticate and register and the refusals, in seconds: a fine-grained
token for a repository, a GitHub App (an RS256 JWT for an installation token) for an organisation, JIT configs,
a wrong App key, and bad input.

The entrypoint runs as root here, as in the image, and runs the runner as uid 1000 (RUNNER_USER): the runner's
folder is that user's, in a folder it can only pass through, beside the credential's root-only file (0400 0:0), which
a job then tries and fails to read."""

from __future__ import annotations

import io
import os
import platform
import shutil
import signal
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.test_github_runner import ArgvWatch
from tests.standins.github_api import GitHubStandin

ENTRYPOINT = Path(__file__).resolve().parents[1] / "images" / "github-runner" / "entrypoint.sh"
ARCH_LABEL = {"x86_64": "X64", "aarch64": "ARM64"}[platform.machine()]
PAT = "github_pat_entrypoint_test_0123456789"
RUNNER_UID = 1000


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder that uid 1000 can pass through (pytest's own are root's, 0700): the runner's lives in it."""
    folder = Path(tempfile.mkdtemp(prefix="archfleet-runner-test-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def standin() -> Iterator[GitHubStandin]:
    server = GitHubStandin("127.0.0.1", 0, PAT).start()
    yield server
    server.stop()


def runner_dir(standin: GitHubStandin, tmp_path: Path) -> Path:
    directory = tmp_path / "actions-runner"
    directory.mkdir()
    with tarfile.open(fileobj=io.BytesIO(standin.release)) as archive:
        archive.extractall(directory, filter="data")
    for path in [directory, *directory.iterdir()]:  # as the image's `chown -R runner:runner /opt/actions-runner`
        os.chown(path, RUNNER_UID, RUNNER_UID)
    return directory


def start(standin: GitHubStandin, directory: Path, **env: str) -> subprocess.Popen[str]:
    token_file = directory.parent / "github-token"
    if not token_file.exists():
        token_file.write_text(PAT + "\n")
        token_file.chmod(0o400)  # root's: the runner's user cannot read it
    environment = {"PATH": os.environ["PATH"], "GITHUB_URL": f"{standin.url}/acme/demo",
                   "GITHUB_API_URL": f"{standin.url}/api/v3", "GITHUB_TOKEN_FILE": str(token_file),
                   "RUNNER_NAME": "runner-1", "RUNNER_LABELS": "fleet", "RUNNER_USER": f"{RUNNER_UID}:{RUNNER_UID}",
                   **env}
    return subprocess.Popen([str(ENTRYPOINT)], cwd=directory, env=environment, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return process.returncode, output


def test_a_token_runner_registers_runs_one_job_registers_afresh_and_deregisters_on_sigterm(
        standin: GitHubStandin, tmp_path: Path) -> None:
    directory = runner_dir(standin, tmp_path)
    watch = ArgvWatch(standin)
    watch.start()
    try:
        first = start(standin, directory)
        standin.wait_for(lambda: standin.registry, 20, "registration")
        [runner] = standin.runners()
        assert runner.labels == ["self-hosted", "linux", ARCH_LABEL, "fleet"] and runner.ephemeral
        job = standin.wait_job(standin.queue_job([ARCH_LABEL, "fleet"], "uname -m"), 20)
        assert (job.output, job.exit_code) == (platform.machine() + "\n", 0)
        first.communicate(timeout=20)
        assert first.returncode == 0 and standin.runners() == []  # ephemeral: removed after its job

        second = start(standin, directory)
        standin.wait_for(lambda: standin.registry, 20, "second registration")
        [again] = standin.runners()
        assert again.registered_with != runner.registered_with
        code, output = stop(second)
        assert code == 143 and standin.runners() == [], output
        assert [(m.kind, m.used_by) for m in standin.minted] == [
            ("registration", "runner-1"), ("registration", "runner-1"), ("remove", "runner-1")]
        assert not (directory / ".runner").exists()
    finally:
        watch.stop()
    assert watch.samples > 10 and watch.found == [], watch.found
    assert "/repos/acme/demo/actions/runners/registration-token" in " ".join(standin.requests)


def test_a_restart_after_an_unclean_end_deregisters_the_old_runner_first(standin: GitHubStandin,
                                                                          tmp_path: Path) -> None:
    directory = runner_dir(standin, tmp_path)
    first = start(standin, directory)
    standin.wait_for(lambda: standin.registry, 20, "registration")
    [old] = standin.runners()
    first.kill()  # SIGKILL: no chance to deregister; .runner stays, as in a container killed at the stop timeout
    first.communicate(timeout=10)
    second = start(standin, directory)
    standin.wait_for(lambda: any(r.id != old.id for r in standin.registry.values()), 20, "a new registration")
    assert [r.id for r in standin.removed] == [old.id]
    assert stop(second)[0] == 143


def test_a_github_app_mints_an_installation_token_for_an_organisation(standin: GitHubStandin,
                                                                       tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout"], check=True, capture_output=True).stdout
    standin.app = ("4242", "77", public)
    directory = runner_dir(standin, tmp_path)
    process = start(standin, directory, GITHUB_URL=f"{standin.url}/acme", GITHUB_APP_ID="4242",
                    GITHUB_APP_INSTALLATION_ID="77", GITHUB_APP_KEY_FILE=str(key), GITHUB_TOKEN_FILE="/nonexistent")
    standin.wait_for(lambda: standin.registry, 20, "registration")
    code, output = stop(process)
    assert code == 143 and standin.runners() == [], output
    assert len(standin.installation_tokens) == 2  # one to register, one to deregister
    assert "POST /api/v3/orgs/acme/actions/runners/registration-token 201" in standin.requests


def test_a_github_app_with_the_wrong_key_registers_nothing(standin: GitHubStandin, tmp_path: Path) -> None:
    keys = [tmp_path / "app.pem", tmp_path / "other.pem"]
    for key in keys:
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(keys[0]), "-pubout"], check=True,
                            capture_output=True).stdout
    standin.app = ("4242", "77", public)
    process = start(standin, runner_dir(standin, tmp_path), GITHUB_APP_ID="4242", GITHUB_APP_INSTALLATION_ID="77",
                    GITHUB_APP_KEY_FILE=str(keys[1]))
    output, _ = process.communicate(timeout=30)
    assert process.returncode != 0 and "401" in output, output
    assert standin.runners() == [] and standin.installation_tokens == []


def test_a_jit_runner_is_registered_by_the_api_and_deleted_on_sigterm(standin: GitHubStandin,
                                                                      tmp_path: Path) -> None:
    process = start(standin, runner_dir(standin, tmp_path), RUNNER_REGISTRATION="jit")
    standin.wait_for(lambda: standin.registry, 20, "JIT registration")
    [runner] = standin.runners()
    assert runner.registered_with == "jit" and runner.labels == ["self-hosted", "linux", ARCH_LABEL, "fleet"]
    job = standin.wait_job(standin.queue_job(["self-hosted"], "echo jit"), 20)
    assert job.output == "jit\n"
    process.communicate(timeout=20)
    assert process.returncode == 0 and standin.runners() == []

    (tmp_path / "again").mkdir()
    process = start(standin, runner_dir(standin, tmp_path / "again"), RUNNER_REGISTRATION="jit")
    standin.wait_for(lambda: standin.registry, 20, "second JIT registration")
    code, output = stop(process)
    assert code == 143 and standin.runners() == [], output
    assert any(r.startswith("DELETE /api/v3/repos/acme/demo/actions/runners/") for r in standin.requests)


def test_a_job_runs_as_the_runner_user_without_privileges_and_cannot_read_the_credential(
        standin: GitHubStandin, tmp_path: Path) -> None:
    directory = runner_dir(standin, tmp_path)
    token_file = directory.parent / "github-token"
    process = start(standin, directory)
    standin.wait_for(lambda: standin.registry, 20, "registration")
    probe = (f"id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; cat {token_file}; "
             "echo cat=$?; entrypoint=$(awk '/^PPid/ {print $2}' /proc/$PPID/status); "
             "cat /proc/$entrypoint/environ >/dev/null; echo environ=$?")  # the root entrypoint, run.sh's parent
    job = standin.wait_job(standin.queue_job([ARCH_LABEL], probe), 20)
    process.communicate(timeout=20)
    assert job.output is not None, job
    lines = job.output.splitlines()
    assert lines[:2] == [str(RUNNER_UID), str(RUNNER_UID)], job.output
    assert "CapEff:\t0000000000000000" in lines and "CapBnd:\t0000000000000000" in lines, job.output
    assert "NoNewPrivs:\t1" in lines, job.output
    assert f"cat: {token_file}: Permission denied" in lines and "cat=1" in lines, job.output
    assert "environ=1" in lines, job.output  # nor into the memory of the process that read it
    assert PAT not in job.output
    assert process.returncode == 0 and standin.runners() == []


def test_the_entrypoint_refuses_to_run_the_runner_as_root_or_to_start_as_another_user(
        standin: GitHubStandin, tmp_path: Path) -> None:
    directory = runner_dir(standin, tmp_path)
    for user in ("0:0", "1000:0", "root", "no-such-user"):
        process = start(standin, directory, RUNNER_USER=user)
        output, _ = process.communicate(timeout=20)
        assert process.returncode == 2 and len(output.strip().splitlines()) == 1, (user, output)
    # The script as the runner's user would meet it: a copy in a folder that user can reach (a checkout may sit
    # under a 0700 folder, such as a clean clone in `mktemp -d`, which that user cannot enter).
    reachable = Path(tempfile.mkdtemp(prefix="archfleet-entrypoint-"))
    try:
        reachable.chmod(0o755)
        entrypoint = reachable / ENTRYPOINT.name
        shutil.copy2(ENTRYPOINT, entrypoint)
        as_user = subprocess.run(["setpriv", f"--reuid={RUNNER_UID}", f"--regid={RUNNER_UID}", "--clear-groups",
                                  str(entrypoint)], env={"PATH": os.environ["PATH"], "GITHUB_URL": "x"},
                                 capture_output=True, text=True, timeout=20, check=False)
    finally:
        shutil.rmtree(reachable)
    assert as_user.returncode == 2 and "the entrypoint runs as root" in as_user.stderr, as_user.stderr
    assert standin.requests == []


@pytest.mark.parametrize(("env", "message"), [
    ({"GITHUB_URL": "https://github.example"}, "is not https://HOST/OWNER or https://HOST/OWNER/REPO"),
    ({"GITHUB_URL": "https://github.example/a/b/c"}, "is not https://HOST/OWNER or https://HOST/OWNER/REPO"),
    ({"GITHUB_TOKEN_FILE": "/nonexistent/token"}, "cannot read the token file /nonexistent/token"),
    ({"RUNNER_EPHEMERAL": "false", "RUNNER_REGISTRATION": "jit"}, "jit runners are ephemeral"),
])
def test_bad_input_is_one_line_and_exit_2(standin: GitHubStandin, tmp_path: Path, env: dict[str, str],
                                          message: str) -> None:
    process = start(standin, runner_dir(standin, tmp_path), **env)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 2 and message in output and len(output.strip().splitlines()) == 1, output
    assert standin.requests == []
