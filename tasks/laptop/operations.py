"""Operations of the laptop deploy. Each reads the one LaptopState fact (``fact_args`` are the same for every
operation, and ``current`` gathers it once per host), decides, and yields commands from tasks.laptop.commands or
calls ``host.noop("why")``."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Generator
from io import BytesIO
from typing import Any

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand, operation

from archfleet.errors import OperationFailed
from archfleet.facts.laptop import ENV_FILES_DIR, LaptopFacts, LaptopState
from archfleet.tasks import apt_commands, docker_commands
from archfleet.tasks.laptop import commands

Commands = Generator[StringCommand | FileUploadCommand, None, None]


def current(fact_args: dict[str, Any]) -> LaptopFacts:
    """The host's LaptopState, gathered once per host and run: pyinfra 3 runs a fact's command again on every
    ``get_fact``, and every operation here decides from the state before the run (as pyinfra's planning does)."""
    key = repr(sorted(fact_args.items()))
    memo: dict[str, LaptopFacts] | None = getattr(host, "archfleet_laptop_facts", None)
    if memo is None:
        memo = {}
        setattr(host, "archfleet_laptop_facts", memo)  # noqa: B010 (Host declares no such attribute)
    if key not in memo:
        memo[key] = host.get_fact(LaptopState, **fact_args)
    return memo[key]


def expand(path: str, home: str) -> str:
    if path == "~":
        return home
    return posixpath.join(home, path[2:]) if path.startswith("~/") else path


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@operation()
def command_line_tools(fact_args: dict[str, Any], install: bool = True) -> Commands:
    """Apple's Command Line Tools are present (installed unattended when root is available without a prompt)."""
    facts = current(fact_args)
    if facts["command_line_tools"]:
        host.noop("Command Line Tools are installed")
        return
    if not install or not facts["sudo"]:
        why = "clt_install is off" if not install else "that needs root and `sudo -n` asks for a password"
        raise OperationFailed(
            f"{host.name}: the Command Line Tools are missing and cannot be installed unattended ({why}): "
            "run `xcode-select --install`, finish the dialog, then run archfleet laptop again")
    yield commands.install_command_line_tools()


@operation()
def homebrew(fact_args: dict[str, Any], installer_url: str, prefix: str) -> Commands:
    """Homebrew is installed at ``prefix`` by its own installer, non-interactively."""
    facts = current(fact_args)
    if facts["brew"] == f"{prefix}/bin/brew":
        host.noop(f"Homebrew is installed at {prefix}")
        return
    if not facts["sudo"]:
        raise OperationFailed(f"{host.name}: Homebrew's installer needs `sudo -n` to work without a password prompt")
    yield commands.install_homebrew(installer_url)


@operation()
def brew_packages(fact_args: dict[str, Any], brew: str, taps: list[str], formulae: list[str],
                  casks: list[str]) -> Commands:
    """The taps, formulae and casks are installed; a cask whose app is already in /Applications is adopted."""
    facts = current(fact_args)
    missing_taps = [t for t in taps if t not in facts["taps"]]
    for tap in missing_taps:
        yield commands.brew_tap(brew, tap)
    missing = [f for f in formulae if f.rsplit("/", 1)[-1] not in facts["formulae"]]
    if missing:
        yield commands.brew_install_formulae(brew, missing)
    missing_casks = [c for c in casks if c.rsplit("/", 1)[-1] not in facts["casks"]]
    for cask in missing_casks:
        yield commands.brew_install_cask(brew, cask)
    if not (missing_taps or missing or missing_casks):
        host.noop(f"{count(len(taps), 'tap')}, {count(len(formulae), 'formula')} and {count(len(casks), 'cask')}"
                  " are installed")


@operation()
def apt_packages(fact_args: dict[str, Any], packages: list[str], root: bool = True) -> Commands:
    """The Debian packages are installed."""
    facts = current(fact_args)
    missing = [p for p in packages if p not in facts["debs"]]
    if not missing:
        host.noop(f"{count(len(packages), 'apt package')} installed")
        return
    yield apt_commands.apt_update(root)
    yield apt_commands.apt_install(missing, root)


def suite_files(suite: str) -> tuple[str, str]:
    return (f"/etc/apt/sources.list.d/archfleet-{suite}.list", f"/etc/apt/preferences.d/archfleet-{suite}")


@operation()
def apt_suite_packages(fact_args: dict[str, Any], mirror: str, suite: str, packages: list[str],
                       root: bool = True) -> Commands:
    """``packages`` come from another suite of the Debian mirror, pinned low so nothing else is taken from it."""
    facts = current(fact_args)
    source_file, pin_file = suite_files(suite)
    wanted = {source_file: commands.suite_source(mirror, suite), pin_file: commands.suite_pin(suite)}
    changed = False
    for path, content in wanted.items():
        if facts["files"].get(path) != sha256(content.encode()):
            yield commands.write_file(path, content, root)
            changed = True
    missing = [p for p in packages if p not in facts["debs"]]
    if changed or missing:
        yield apt_commands.apt_update(root)
    if missing:
        yield apt_commands.apt_install(missing, root, suite=suite)
    if not (changed or missing):
        host.noop(f"{', '.join(packages)} from {suite} installed")


@operation()
def login_shell(fact_args: dict[str, Any], shell: str, root: bool = True) -> Commands:
    """``shell`` is the user's login shell (any zsh counts: /bin/zsh and /usr/bin/zsh are the same shell)."""
    facts = current(fact_args)
    if posixpath.basename(facts["login_shell"] or "") == posixpath.basename(shell):
        host.noop(f"{facts['user']}'s login shell is {facts['login_shell']}")
        return
    yield commands.change_login_shell(facts["user"], shell, root)


@operation()
def ohmyzsh(fact_args: dict[str, Any], installer_url: str, remote: str) -> Commands:
    """oh-my-zsh is installed (its installer, unattended, keeping the user's .zshrc)."""
    facts = current(fact_args)
    if facts["ohmyzsh"]:
        host.noop(f"oh-my-zsh is installed in {facts['ohmyzsh_dir']}")
        return
    yield commands.install_ohmyzsh(installer_url, remote, facts["ohmyzsh_dir"])


@operation()
def managed_block(fact_args: dict[str, Any], path: str, lines: list[str]) -> Commands:
    """archfleet's marked block in the user's file holds ``lines``; every other line of the file is kept."""
    facts = current(fact_args)
    file = expand(path, facts["home"])
    block = commands.managed_block(lines)
    if facts["blocks"].get(file) == sha256(block.encode()):
        host.noop(f"archfleet's block in {file} is up to date")
        return
    yield commands.replace_block(file, block)


@operation()
def skipped(fact_args: dict[str, Any], reason: str) -> Commands:
    """A part of the profile that cannot run here, said in the plan and the results instead of failing the host."""
    host.noop(reason)
    return
    yield


@operation()
def conda(fact_args: dict[str, Any], installer_url: str, sha256_by_platform: dict[str, str],
          platform: str) -> Commands:
    """conda is installed at the profile's prefix by the installer for this platform, its sha256 checked first."""
    facts = current(fact_args)
    if facts["conda"]:
        host.noop(f"conda is installed in {facts['conda_prefix']}")
        return
    expected = sha256_by_platform.get(platform)
    if not expected:
        raise OperationFailed(
            f"{host.name}: conda_installer_sha256 has no entry for {platform}: add the sha256 of {installer_url}")
    yield commands.install_conda(installer_url, expected, facts["conda_prefix"])


@operation()
def conda_environments(fact_args: dict[str, Any], environments: dict[str, str]) -> Commands:
    """Each environment exists, created from its file, and is updated when the file changed since the last run.

    ``environments`` maps a name to the text of its environment file. The file applied last is kept on the host
    (ENV_FILES_DIR); it is replaced only after conda succeeded, so a failed update is retried next time.
    """
    facts = current(fact_args)
    prefix = facts["conda_prefix"]
    directory = expand(ENV_FILES_DIR, facts["home"])
    first = True
    unchanged = []
    for name, text in sorted(environments.items()):
        exists = name in facts["conda_envs"]
        if exists and facts["env_files"].get(name) == sha256(text.encode()):
            unchanged.append(name)
            continue
        if first:
            yield commands.make_directory(directory)
            first = False
        staged = f"{directory}/{name}.yml.new"
        yield FileUploadCommand(BytesIO(text.encode()), staged)
        yield commands.conda_env(prefix, "update" if exists else "create", name, staged)
        yield commands.move(staged, f"{directory}/{name}.yml")
    if len(unchanged) == len(environments):
        host.noop(f"conda environments up to date: {', '.join(unchanged) or 'none declared'}")


@operation()
def docker_running(fact_args: dict[str, Any], how: str, brew_prefix: str | None = None) -> Commands:
    """The Docker daemon answers: the engine started by the init system (Linux), or colima started (macOS)."""
    facts = current(fact_args)
    if facts["docker_server"]:
        host.noop(f"Docker {facts['docker_server']} is running")
        return
    if how == "colima" and brew_prefix:
        yield commands.colima_start(brew_prefix)
    elif how == "engine":
        yield docker_commands.start_engine(facts["init_system"])
        yield docker_commands.wait_for_engine()
    else:
        host.noop("Docker Desktop is not running: open Docker.app once (it asks for its own permissions)")


@operation()
def buildx_builder(fact_args: dict[str, Any], mode: str, builder: str, platforms: list[str],
                   nodes: list[dict[str, str]], shell_prefix: str = "", plugin: str | None = None) -> Commands:
    """The buildx builder ``builder`` covers ``platforms``, with the remote native ``nodes`` (name, endpoint,
    platform). mode ``append``: one docker-container builder, nodes appended. mode ``contexts``: the docker
    driver (Debian's engine without Docker Hub): context ``name`` on the local engine is the builder, and each
    remote node is the context-backed builder ``builder-node``. ``plugin``: a buildx binary to link into
    ~/.docker/cli-plugins when docker has no buildx (Homebrew's docker-buildx, for colima)."""
    facts = current(fact_args)
    name = builder
    todo = []
    if plugin and facts["buildx_version"] is None:
        todo.append(commands.link_cli_plugin(plugin, posixpath.join(facts["home"], ".docker", "cli-plugins")))
    if mode == "append":
        present = {n["name"] for n in facts["builder_nodes"]}
        if facts["builder_driver"] is None:
            todo.append(commands.buildx_create(name, platforms, shell_prefix))
        for node in nodes:
            if f"{name}-{node['name']}" not in present:
                todo.append(commands.buildx_append(name, f"{name}-{node['name']}", node["endpoint"],
                                                   node["platform"], shell_prefix))
    else:
        wanted = {name: "unix:///var/run/docker.sock"}
        wanted.update({f"{name}-{node['name']}": node["endpoint"] for node in nodes})
        for context, endpoint in wanted.items():
            if context not in facts["contexts"]:
                todo.append(commands.docker_context(context, endpoint))
            elif facts["contexts"][context] != endpoint:
                todo.append(commands.docker_context_remove(context))
                todo.append(commands.docker_context(context, endpoint))
    if not todo:
        host.noop(f"buildx builder {name} is set up ({count(len(nodes), 'remote node')})")
    yield from todo
