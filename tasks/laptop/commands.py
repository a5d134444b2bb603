"""Command text for the laptop deploy (brew, apt, oh-my-zsh, conda, buildx, managed blocks). Pure: nothing here
runs anything or reads a host; every value reaches the shell through QuoteString."""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand

from archfleet.facts.laptop import BLOCK_BEGIN, BLOCK_END, SHA256_FUNCTION
from archfleet.tasks.apt_commands import sudo_prefix as _sudo

# --- macOS ------------------------------------------------------------------------------------------------


def install_command_line_tools() -> StringCommand:
    """Apple's unattended route: the marker file makes `softwareupdate -l` list the CLT, then install that label."""
    marker = "/tmp/.com.apple.dt.CommandLineTools.installondemand.in-progress"
    return StringCommand(
        "sudo", "-n", "sh", "-c", QuoteString(
            f"touch {marker} && label=$(softwareupdate -l 2>/dev/null | sed -n "
            "'s/^[* ]*Label: *\\(Command Line Tools.*\\)$/\\1/p' | tail -n 1)"
            " && [ -n \"$label\" ] && softwareupdate -i \"$label\" --verbose; rc=$?; rm -f " + marker + "; exit $rc"
        ),
    )


def download_and_run(installer_url: str, run: str, *arguments: str) -> StringCommand:
    """Download an installer into a private temporary directory (``mktemp -d``: mode 0700, a fresh name), then run
    ``run`` on it as ``"$d/installer"``; the directory is removed on every exit. Never ``curl | sh``: a failed or
    truncated download stops here and runs nothing. ``arguments`` reach ``run`` as "$1", "$2", ..."""
    script = (
        'd=$(mktemp -d) || exit 1; trap \'rm -rf "$d"\' EXIT; '
        'curl -fsSL "$0" -o "$d/installer" || exit 1; ' + run
    )
    return StringCommand("sh", "-c", QuoteString(script), QuoteString(installer_url),
                         *(QuoteString(argument) for argument in arguments))


def install_homebrew(installer_url: str) -> StringCommand:
    return download_and_run(installer_url, 'NONINTERACTIVE=1 /bin/bash "$d/installer"')


def brew_tap(brew: str, tap: str) -> StringCommand:
    return StringCommand(QuoteString(brew), "tap", QuoteString(tap))


def brew_install_formulae(brew: str, formulae: list[str]) -> StringCommand:
    return StringCommand("HOMEBREW_NO_AUTO_UPDATE=1", QuoteString(brew), "install", "--formula",
                         *(QuoteString(f) for f in formulae))


def brew_install_cask(brew: str, cask: str) -> StringCommand:
    """`--adopt`: an app of that name already in /Applications becomes the cask's, instead of failing."""
    return StringCommand("HOMEBREW_NO_AUTO_UPDATE=1", QuoteString(brew), "install", "--cask", "--adopt",
                         QuoteString(cask))


def colima_start(brew_prefix: str) -> StringCommand:
    return StringCommand(QuoteString(f"{brew_prefix}/bin/colima"), "start")


# --- Debian / Ubuntu -------------------------------------------------------------------------------------




def write_file(path: str, content: str, root: bool = True) -> StringCommand:
    """The whole file, from the command itself (small text files: apt sources and pins)."""
    return StringCommand(*_sudo(root), "sh", "-c", QuoteString('printf "%s" "$1" > "$2"'), "sh",
                         QuoteString(content), QuoteString(path))


def suite_source(mirror: str, suite: str) -> str:
    return f"deb {mirror} {suite} main\n"


def suite_pin(suite: str, priority: int = 100) -> str:
    """Below the default 500: nothing comes from ``suite`` unless asked for with ``-t``."""
    return f"Package: *\nPin: release n={suite}\nPin-Priority: {priority}\n"


# --- shells ----------------------------------------------------------------------------------------------


def change_login_shell(user: str, shell: str, root: bool = True) -> StringCommand:
    return StringCommand(*_sudo(root), "chsh", "-s", QuoteString(shell), QuoteString(user))


def install_ohmyzsh(installer_url: str, remote: str, directory: str) -> StringCommand:
    """oh-my-zsh's own installer, unattended; it keeps the user's .zshrc (archfleet adds its block after)."""
    return download_and_run(
        installer_url, 'ZSH="$1" REMOTE="$2" KEEP_ZSHRC=yes CHSH=no RUNZSH=no sh "$d/installer" --unattended',
        directory, remote)


def managed_block(lines: list[str]) -> str:
    """The text archfleet owns in a user's file, markers included."""
    return "\n".join([BLOCK_BEGIN, *lines, BLOCK_END]) + "\n"


def replace_block(path: str, block: str) -> StringCommand:
    """Put ``block`` in place of the file's archfleet block (or at its end); every other line stays."""
    program = (
        'BEGIN{b=ENVIRON["ARCHFLEET_BLOCK"]} '
        f'$0=="{BLOCK_BEGIN}"{{skip=1; printf "%s", b; done=1; next}} '
        f'skip && $0=="{BLOCK_END}"{{skip=0; next}} '
        '!skip{print} END{if(!done) printf "%s", b}'
    )
    return StringCommand(
        "touch", QuoteString(path), "&&",
        "env", QuoteString(f"ARCHFLEET_BLOCK={block}"), "awk", QuoteString(program), QuoteString(path),
        ">", QuoteString(f"{path}.archfleet-new"), "&&",
        "cat", QuoteString(f"{path}.archfleet-new"), ">", QuoteString(path), "&&",
        "rm", "-f", QuoteString(f"{path}.archfleet-new"),
    )


# --- conda -----------------------------------------------------------------------------------------------


def install_conda(installer_url: str, sha256: str, prefix: str) -> StringCommand:
    """Download, check the sha256 (refuse and run nothing on a mismatch), then the batch install ``-b -p``."""
    return download_and_run(
        installer_url,
        f'{SHA256_FUNCTION}; got=$(h < "$d/installer"); '
        'if [ "$got" != "$1" ]; then '
        'echo "archfleet: refusing the conda installer $0: its sha256 is $got, the profile expects $1" >&2; '
        'exit 1; fi; bash "$d/installer" -b -p "$2"',
        sha256, prefix)


def conda_env(prefix: str, action: str, name: str, file: str) -> StringCommand:
    """`conda env create|update -n NAME -f FILE` (update with --prune: the file is the whole truth)."""
    extra = ["--prune"] if action == "update" else []
    return StringCommand(QuoteString(f"{prefix}/bin/conda"), "env", action, "-n", QuoteString(name),
                         "-f", QuoteString(file), *extra)


def move(source: str, destination: str) -> StringCommand:
    return StringCommand("mv", "-f", QuoteString(source), QuoteString(destination))


def make_directory(path: str) -> StringCommand:
    return StringCommand("mkdir", "-p", QuoteString(path))


# --- docker buildx ---------------------------------------------------------------------------------------


def docker(shell_prefix: str) -> list[str]:
    return [shell_prefix, "docker"] if shell_prefix else ["docker"]


def buildx_create(name: str, platforms: list[str], shell_prefix: str = "") -> StringCommand:
    """A docker-container builder that builds every platform (macOS: Docker Desktop / colima)."""
    return StringCommand(*docker(shell_prefix), "buildx", "create", "--name", QuoteString(name),
                         "--driver", "docker-container", "--platform", QuoteString(",".join(platforms)))


def buildx_append(name: str, node: str, endpoint: str, platform: str, shell_prefix: str = "") -> StringCommand:
    return StringCommand(*docker(shell_prefix), "buildx", "create", "--append", "--name", QuoteString(name),
                         "--node", QuoteString(node), QuoteString(endpoint), "--platform", QuoteString(platform))


def docker_context(name: str, endpoint: str) -> StringCommand:
    """A Docker context: on Linux with the docker driver, each context is a buildx builder of its own."""
    return StringCommand("docker", "context", "create", QuoteString(name), "--docker",
                         QuoteString(f"host={endpoint}"))


def docker_context_remove(name: str) -> StringCommand:
    return StringCommand("docker", "context", "rm", "-f", QuoteString(name))


def link_cli_plugin(binary: str, plugins_dir: str) -> StringCommand:
    return StringCommand("mkdir", "-p", QuoteString(plugins_dir), "&&", "ln", "-sfn", QuoteString(binary),
                         QuoteString(f"{plugins_dir}/{binary.rsplit('/', 1)[-1]}"))
