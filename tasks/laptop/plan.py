"""The laptop deploy as a list of steps, decided from the profile and ONE fact: what deploys/laptop.py runs and
what the deploy spec tests (tests/test_laptop_deploy_specs.py) check against a fake host."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archfleet.errors import OperationFailed
from archfleet.facts.laptop import LaptopFacts
from archfleet.fleet.laptop import LaptopProfile, RemoteNode
from archfleet.tasks.laptop import operations
from archfleet.tasks.laptop.os_vars import OsVars, os_vars

# An inventory host name -> (ssh user, address), or None when the inventory has no such host.
HostLookup = Callable[[str], "tuple[str, str] | None"]


@dataclass
class Step:
    name: str
    operation: Any  # a pyinfra operation from tasks.laptop.operations
    kwargs: dict[str, Any]


def fact_args(profile: LaptopProfile) -> dict[str, Any]:
    """The LaptopState arguments: the same for every operation, so the fact is gathered once per host."""
    return {
        "conda_prefix": profile["conda_prefix"],
        "ohmyzsh_dir": profile["ohmyzsh_dir"],
        "builder": profile["docker_buildx_builder"],
        "block_files": (profile["zshrc_file"], profile["homebrew_shellenv_file"]),
        "managed_files": operations.suite_files(profile["docker_buildx_suite"]),
    }


def resolve_nodes(nodes: list[RemoteNode], lookup: HostLookup) -> list[dict[str, str]]:
    resolved = []
    for node in nodes:
        endpoint = node.endpoint
        if node.host is not None:
            found = lookup(node.host)
            if found is None:
                raise OperationFailed(f"docker_buildx_remote_nodes: {node.host} is not a host of the inventory")
            endpoint = f"ssh://{found[0]}@{found[1]}"
        resolved.append({"name": node.name, "endpoint": str(endpoint), "platform": node.platform})
    return resolved


def zshrc_lines(profile: LaptopProfile, facts: LaptopFacts) -> list[str]:
    plugins = " ".join(profile["ohmyzsh_plugins"])
    lines = [
        f"export ZSH={shlex.quote(facts['ohmyzsh_dir'])}",
        f"ZSH_THEME={shlex.quote(profile['ohmyzsh_theme'])}",
        f"plugins=({plugins})",
        '[ -f "$ZSH/oh-my-zsh.sh" ] && source "$ZSH/oh-my-zsh.sh"',
    ]
    if profile["conda_enabled"]:
        conda = shlex.quote(f"{facts['conda_prefix']}/bin/conda")
        lines.append(f'[ -x {conda} ] && eval "$({conda} shell.zsh hook)"')
    return lines + list(profile["zshrc_extra_lines"])


def plan(profile: LaptopProfile, facts: LaptopFacts, lookup: HostLookup,
         environment_texts: dict[str, str] | None = None) -> list[Step]:
    """Every step of the deploy, in order. ``environment_texts``: name -> environment file text (read from the
    profile's files when not given)."""
    v: OsVars = os_vars(profile, facts)
    args = fact_args(profile)
    steps: list[Step] = []

    def step(title: str, op: Any, **kwargs: Any) -> None:
        steps.append(Step(title, op, {"fact_args": args, **kwargs}))

    docker = profile["docker_enabled"]
    if v.family == "macos":
        step("Command Line Tools are installed", operations.command_line_tools, install=profile["clt_install"])
        step(f"Homebrew is installed at {v.brew_prefix}", operations.homebrew,
             installer_url=profile["homebrew_installer_url"], prefix=v.brew_prefix)
        step(f"Homebrew is on the user's PATH ({profile['homebrew_shellenv_file']})", operations.managed_block,
             path=profile["homebrew_shellenv_file"], lines=[f'eval "$({v.brew} shellenv)"'])
        step("Homebrew taps, formulae and casks are installed", operations.brew_packages, brew=v.brew,
             taps=profile["homebrew_taps"], formulae=v.packages, casks=v.casks)
    else:
        packages = v.packages + (["docker-buildx"] if docker and v.buildx_suite is None else [])
        step("apt packages are installed", operations.apt_packages, packages=packages, root=v.root)
        if docker and v.buildx_suite:
            step(f"docker-buildx is installed from Debian's {v.buildx_suite} suite", operations.apt_suite_packages,
                 mirror=profile["apt_mirror"], suite=v.buildx_suite, packages=["docker-buildx"], root=v.root)
    if profile["zsh_login_shell"]:
        step("zsh is the login shell", operations.login_shell, shell=v.zsh, root=v.root)
    step("oh-my-zsh is installed", operations.ohmyzsh, installer_url=profile["ohmyzsh_installer_url"],
         remote=profile["ohmyzsh_remote"])
    conda_checksum = profile["conda_installer_sha256"].get(v.conda_platform)
    if profile["conda_enabled"] and not conda_checksum and not facts["conda"]:
        step(f"conda is skipped: conda_installer_sha256 has no entry for {v.conda_platform}",
             operations.skipped, reason=f"conda is skipped: add the sha256 of {v.conda_installer_url} to "
             f"conda_installer_sha256.{v.conda_platform} (its .sha256 file on the release page) to install it")
    elif profile["conda_enabled"]:
        step(f"conda is installed ({v.conda_platform} installer, sha256 checked)", operations.conda,
             installer_url=v.conda_installer_url, sha256_by_platform=profile["conda_installer_sha256"],
             platform=v.conda_platform)
        texts = environment_texts if environment_texts is not None else {
            name: path.read_text() for name, path in profile.conda_environments.items()}
        if texts:
            step("conda environments match their files", operations.conda_environments, environments=texts)
    step(f"archfleet's block in {profile['zshrc_file']} sets up oh-my-zsh and conda", operations.managed_block,
         path=profile["zshrc_file"], lines=zshrc_lines(profile, facts))
    if docker:
        step("Docker is running", operations.docker_running, how=v.docker_start, brew_prefix=v.brew_prefix)
        builder = profile["docker_buildx_builder"]
        step(f"buildx builder {builder} covers {', '.join(profile['docker_buildx_platforms'])}",
             operations.buildx_builder, mode=v.buildx_mode, builder=builder,
             platforms=profile["docker_buildx_platforms"], nodes=resolve_nodes(profile.remote_nodes, lookup),
             shell_prefix=v.shell_prefix, plugin=v.buildx_plugin)
    return steps
