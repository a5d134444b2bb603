"""The laptop deploy end to end on a fresh Debian workstation of the lab (workstation-1).

Neither oh-my-zsh nor a conda installer can be downloaded here, so the test serves stand-ins that keep the real
contracts (tests/standins/: an oh-my-zsh-shaped git repository over git's dumb HTTP, and a Miniforge-style batch
installer with its sha256) from an HTTP server on the lab gateway. Everything else is real: apt from Debian's
mirror, zsh, Debian's Docker engine, buildx from Debian 13's docker-buildx package, and the arm64 lab host as a
native remote node over SSH.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from archfleet.lab.hosts import ssh_argv
from archfleet.lab.state import LabHost, LabPaths, LabState, load, state_dir
from tests.lab.support import PROJECT, archfleet, on_host, pyinfra

pytestmark = pytest.mark.lab

STANDINS = PROJECT / "tests" / "standins"
HOST = "workstation-1"
USER_LINES = "# my own settings\nalias ll='ls -l'\nexport EDITOR=vim\n"
ENV_FILE = "name: data\nchannels: [conda-forge]\ndependencies:\n  - python=3.12\n"


@dataclass
class Served:
    base: str
    root: Path
    installer_sha256: str


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("laptop-standins")
    repo = root / "ohmyzsh"
    shutil.copytree(STANDINS / "ohmyzsh-standin", repo)
    git = ["git", "-C", str(repo), "-c", "user.name=archfleet tests", "-c", "user.email=tests@archfleet.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "master", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "oh-my-zsh stand-in"], check=True)
    subprocess.run([*git, "update-server-info"], check=True)  # git's dumb HTTP protocol
    shutil.copy(STANDINS / "fake-miniforge-installer.sh", root / "fake-miniforge-installer.sh")
    (root / "not-the-installer.sh").write_text("#!/bin/sh\necho 'this must never run' > /tmp/archfleet-ran\n")
    (root / "envs").mkdir()
    (root / "envs" / "data.yml").write_text(ENV_FILE)
    address = lab.gateway  # lab hosts reach this machine there
    handler = lambda *a, **k: QuietHandler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer((address, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://{address}:{server.server_address[1]}", root,
                     hashlib.sha256((root / "fake-miniforge-installer.sh").read_bytes()).hexdigest())
    finally:
        server.shutdown()
        server.server_close()


def profile_text(served: Served, arm64: LabHost, conda_prefix: str = "~/miniforge3",
                 installer: str = "fake-miniforge-installer.sh") -> str:
    return f"""\
ohmyzsh_installer_url: {served.base}/ohmyzsh/tools/install.sh
ohmyzsh_remote: {served.base}/ohmyzsh/.git
ohmyzsh_plugins: [git]
conda_installer_url: {served.base}/{installer}
conda_installer_sha256:
  Linux-x86_64: {served.installer_sha256}
conda_prefix: {conda_prefix}
conda_environments:
  data: {served.root}/envs/data.yml
docker_buildx_remote_nodes:
  - {{host: {arm64.name}, platform: linux/arm64}}
"""


def sh(host: LabHost, command: str) -> str:
    result = on_host(host, command)
    assert result.returncode == 0, f"{command}: {result.stderr}"
    return result.stdout


def give_ssh_identity(lab: LabState, host: LabHost) -> None:
    """The user's own SSH key and known hosts, so the workstation reaches the arm64 node (as a user's would)."""
    paths = LabPaths(state_dir())
    for source, target in ((lab.ssh_key, "id_ed25519"), (lab.known_hosts, "known_hosts")):
        command = f"mkdir -p ~/.ssh && umask 077 && cat > ~/.ssh/{target}"
        subprocess.run(ssh_argv(paths, "root", host.address, command), input=Path(source).read_text(),
                       text=True, check=True, capture_output=True)


def timed_pyinfra(*args: str) -> tuple[float, str, dict[str, int]]:
    start = time.monotonic()
    result = pyinfra(*args)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.output[-4000:]
    return elapsed, result.output, result.grand_total()


@pytest.fixture(scope="module")
def fresh_workstation(lab: LabState) -> Iterator[LabHost]:
    """workstation-1 as at first boot (added to the lab if missing), with the user's own .zshrc and SSH key
    (removed again afterwards; the converged host stays for inspection, the next run resets it)."""
    from archfleet.lab import lab as lab_module

    if not lab.hosts_of("workstation"):
        lab_module.up(workstation=1)
    archfleet("lab", "reset", HOST, check=True)
    host = load().host(HOST)
    give_ssh_identity(lab, host)
    sh(host, f"printf '%s' {shlex.quote(USER_LINES)} > ~/.zshrc")
    yield host
    on_host(host, "rm -f ~/.ssh/id_ed25519")


def test_laptop_converges_on_a_fresh_debian_workstation(
    lab: LabState, served: Served, fresh_workstation: LabHost, tmp_path: Path
) -> None:
    host = fresh_workstation
    arm64 = lab.hosts_of("arm64")[0]
    profile = tmp_path / "laptop.yaml"
    profile.write_text(profile_text(served, arm64))
    env_args = ("--limit", HOST, str(PROJECT / "deploys" / "laptop.py"))

    # --dry on the fresh host: a readable plan, nothing changed.
    dry = archfleet("laptop", "--dry", "--profile", str(profile), "--limit", HOST, str(PROJECT / "inventories/lab.py"))
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-2000:]
    for step in ("apt packages are installed", "zsh is the login shell", "oh-my-zsh is installed",
                 "conda is installed", "buildx builder archfleet covers"):
        assert step in dry.stdout + dry.stderr, dry.stdout[-3000:] + dry.stderr[-3000:]
    assert on_host(host, "command -v zsh || test -e ~/.oh-my-zsh || test -e ~/miniforge3").returncode != 0
    assert sh(host, "cat ~/.zshrc") == USER_LINES

    # First converge.
    os.environ["ARCHFLEET_LAPTOP_PROFILE"] = str(profile)
    try:
        first, output, totals = timed_pyinfra("-vv", *env_args)
        assert totals["errors"] == 0 and totals["changed"] > 0, output[-3000:]
        first_commands = output.count("] >>> ")  # -vv shows each command pyinfra runs on the host

        assert sh(host, "getent passwd root | cut -d: -f7").strip() in ("/usr/bin/zsh", "/bin/zsh")
        zshrc = sh(host, "cat ~/.zshrc")
        assert zshrc.startswith(USER_LINES), zshrc  # the user's own lines, kept as they were
        block = zshrc[len(USER_LINES):]
        assert block.startswith("# >>> archfleet >>>\n") and block.endswith("# <<< archfleet <<<\n"), zshrc
        assert 'source "$ZSH/oh-my-zsh.sh"' in block and "plugins=(git)" in block
        # zsh really loads oh-my-zsh (the stand-in's marker) and conda's hook from that block.
        loaded = sh(host, "zsh -i -c 'echo omz=$OH_MY_ZSH_STANDIN_LOADED conda=$CONDA_EXE; alias ll' 2>/dev/null")
        assert "omz=1" in loaded and "conda=/root/miniforge3/bin/conda" in loaded and "ls -l" in loaded, loaded
        assert sh(host, "cat ~/miniforge3/envs/data/environment.yml") == ENV_FILE
        builder = sh(host, "docker buildx inspect archfleet")
        assert "linux/amd64" in builder, builder
        native = sh(host, f"docker buildx inspect archfleet-{arm64.name}")
        assert re.search(r"Platforms:\s+linux/arm64", native), native
        platforms = set(re.findall(r"linux/\w+", builder + native))
        assert {"linux/amd64", "linux/arm64"} <= platforms
        # And they build: linux/amd64 on the local engine, linux/arm64 natively on the arm64 node over SSH.
        for context, platform in (("archfleet", "linux/amd64"), (f"archfleet-{arm64.name}", "linux/arm64")):
            sh(host, "d=$(mktemp -d) && echo hi > $d/hello"
               " && printf 'FROM scratch\\nCOPY hello /hello\\n' > $d/Dockerfile"
               f" && docker --context {context} buildx build --platform {platform} --output type=tar,dest=/dev/null $d"
               " && rm -rf $d")

        # Second converge: nothing changes.
        second, output, totals = timed_pyinfra("-vv", *env_args)
        assert totals["changed"] == 0 and totals["errors"] == 0, output[-3000:]
        second_commands = output.count("] >>> ")
        assert second_commands == 1, "a no-op run is one command: the LaptopState fact"

        # The environment file changes: only that environment is updated.
        (served.root / "envs" / "data.yml").write_text(ENV_FILE + "  - pip\n")
        profile.write_text(profile_text(served, arm64))
        _, output, totals = timed_pyinfra(*env_args)
        assert totals["changed"] == 1, output[-3000:]
        assert "pip" in sh(host, "cat ~/miniforge3/envs/data/environment.yml")
        (served.root / "envs" / "data.yml").write_text(ENV_FILE)
        print(f"\nlaptop on {HOST}: first converge {first:.1f}s, {first_commands} commands; "
              f"no-op converge {second:.1f}s, {second_commands} command", file=sys.stderr)
    finally:
        os.environ.pop("ARCHFLEET_LAPTOP_PROFILE", None)


def test_laptop_refuses_an_installer_whose_checksum_does_not_match(
    lab: LabState, served: Served, fresh_workstation: LabHost, tmp_path: Path
) -> None:
    host = fresh_workstation
    arm64 = lab.hosts_of("arm64")[0]
    profile = tmp_path / "bad.yaml"
    profile.write_text(profile_text(served, arm64, conda_prefix="~/other-conda", installer="not-the-installer.sh"))
    result = archfleet("laptop", "--profile", str(profile), "--limit", HOST, str(PROJECT / "inventories/lab.py"))
    assert result.returncode == 1, result.stdout[-3000:]
    assert "refusing the conda installer" in result.stdout + result.stderr
    assert f"the profile expects {served.installer_sha256}" in result.stdout + result.stderr
    assert on_host(host, "test -e ~/other-conda || test -e /tmp/archfleet-ran").returncode != 0

