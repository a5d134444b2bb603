"""Everything the laptop deploy decides on, from ONE shell command (a no-op run costs one round trip)."""

from __future__ import annotations

import shlex
from typing import TypedDict

from pyinfra.api import FactBase

BLOCK_BEGIN = "# >>> archfleet >>>"
BLOCK_END = "# <<< archfleet <<<"
# sed's program for archfleet's block in a file, markers included: what the fact hashes.
BLOCK_SED = f"/^{BLOCK_BEGIN}$/,/^{BLOCK_END}$/p"
# Copies of the conda environment files the host was last converged with; their sha256 says what changed.
ENV_FILES_DIR = "~/.config/archfleet/conda-envs"
BREW_CANDIDATES = ("/opt/homebrew/bin/brew", "/usr/local/bin/brew")
# A shell function `h`: the sha256 of stdin on Linux (sha256sum) and macOS (shasum); the conda installer uses it too.
SHA256_FUNCTION = (
    "h() { if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi | cut -c1-64; }"
)


def shell_path(path: str) -> str:
    """``~/x`` -> ``"$HOME"/x`` (quoted), anything else quoted: a path for the shell, expanded on the host."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def laptop_state_command(conda_prefix: str, ohmyzsh_dir: str, builder: str, block_files: tuple[str, ...] = (),
                         managed_files: tuple[str, ...] = ()) -> str:
    prefix = shell_path(conda_prefix)
    envs_dir = shell_path(ENV_FILES_DIR)
    parts = [
        'PATH="/opt/homebrew/bin:/usr/local/bin:$PATH"',
        SHA256_FUNCTION,
        'echo "kernel=$(uname -s)"', 'echo "machine=$(uname -m)"', 'echo "user=$(id -un)"', 'echo "uid=$(id -u)"',
        'echo "home=$HOME"',
        "[ -r /etc/os-release ] && sed -n 's/^ID=/os_id=/p; s/^VERSION_CODENAME=/os_codename=/p' /etc/os-release",
        "if [ -x /usr/bin/dscl ]; then dscl . -read \"/Users/$(id -un)\" UserShell 2>/dev/null"
        " | sed 's/^UserShell: */login_shell=/';"
        " else getent passwd \"$(id -un)\" | cut -d: -f7 | sed 's/^/login_shell=/'; fi",
        "if [ \"$(id -u)\" = 0 ] || sudo -n true 2>/dev/null; then echo sudo=yes; else echo sudo=no; fi",
        "if [ -d /run/systemd/system ]; then echo init=systemd; elif [ -d /etc/init.d ]; then echo init=sysvinit;"
        " else echo init=none; fi",
        "if [ \"$(uname -s)\" = Darwin ]; then"
        " if xcode-select -p >/dev/null 2>&1; then echo clt=yes; else echo clt=no; fi; fi",
        f"for b in {' '.join(BREW_CANDIDATES)}; do if [ -x \"$b\" ]; then echo \"brew=$b\";"
        " \"$b\" list --formula -1 | sed 's/^/formula=/'; \"$b\" list --cask -1 | sed 's/^/cask=/';"
        " \"$b\" tap | sed 's/^/tap=/'; break; fi; done",
        "if command -v dpkg-query >/dev/null 2>&1; then"
        " dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' | awk '$1==\"ii\"{print \"deb=\"$2}'; fi",
        f"for f in {' '.join(shell_path(f) for f in block_files) or '/dev/null'}; do"
        f" echo \"block=$(sed -n '{BLOCK_SED}' \"$f\" 2>/dev/null | h) $f\"; done",
        f"for f in {' '.join(shell_path(f) for f in managed_files) or '/dev/null'}; do"
        " [ -f \"$f\" ] && echo \"file=$(h < \"$f\") $f\"; done",
        f"d={shell_path(ohmyzsh_dir)}; echo \"ohmyzsh_dir=$d\"; [ -f \"$d/oh-my-zsh.sh\" ] && echo ohmyzsh=yes",
        f"p={prefix}; echo \"conda_prefix=$p\"; [ -x \"$p/bin/conda\" ] && echo conda=yes",
        "for e in \"$p\"/envs/*/; do [ -d \"$e\" ] && echo \"conda_env=$(basename \"$e\")\"; done",
        f"for f in {envs_dir}/*.yml; do [ -f \"$f\" ] && echo \"env_file=$(h < \"$f\") $(basename \"$f\" .yml)\"; done",
        "if command -v docker >/dev/null 2>&1; then"
        " docker version --format '{{.Server.Version}}' 2>/dev/null | sed 's/^/docker_server=/';"
        " docker buildx version 2>/dev/null | sed 's/^/buildx=/';"
        " docker context ls --format '{{.Name}} {{.DockerEndpoint}}' 2>/dev/null | sed 's/^/context=/';"
        f" docker buildx inspect {shlex.quote(builder)} 2>/dev/null | sed 's/^/builder:/'; fi",
        "true",
    ]
    return "; ".join(parts)


class BuilderNode(TypedDict):
    name: str
    endpoint: str
    platforms: list[str]


class LaptopFacts(TypedDict):
    kernel: str
    machine: str
    user: str
    uid: int
    home: str
    os_id: str | None
    os_codename: str | None
    login_shell: str | None
    sudo: bool
    init_system: str
    command_line_tools: bool | None
    brew: str | None
    formulae: list[str]
    casks: list[str]
    taps: list[str]
    debs: list[str]
    blocks: dict[str, str]
    files: dict[str, str]
    ohmyzsh_dir: str
    ohmyzsh: bool
    conda_prefix: str
    conda: bool
    conda_envs: list[str]
    env_files: dict[str, str]
    docker_server: str | None
    buildx_version: str | None
    contexts: dict[str, str]
    builder_driver: str | None
    builder_nodes: list[BuilderNode]


def _builder(lines: list[str]) -> tuple[str | None, list[BuilderNode]]:
    driver = None
    nodes: list[BuilderNode] = []
    in_nodes = False
    for line in lines:
        key, _, value = line.partition(":")
        value = value.strip()
        if key == "Driver" and driver is None:
            driver = value
        elif key == "Nodes":
            in_nodes = True
        elif in_nodes and key == "Name":
            nodes.append({"name": value, "endpoint": "", "platforms": []})
        elif in_nodes and nodes and key == "Endpoint":
            nodes[-1]["endpoint"] = value
        elif in_nodes and nodes and key == "Platforms":
            nodes[-1]["platforms"] = [p.strip().rstrip("*") for p in value.split(",") if p.strip()]
    return driver, nodes


class LaptopState(FactBase[LaptopFacts]):
    """
    The machine as the laptop deploy sees it: OS, user, login shell, Command Line Tools, Homebrew (prefix,
    formulae, casks, taps), Debian packages, the sha256 of archfleet's block in each
    ``block_files`` file and of each ``managed_files`` file, oh-my-zsh, conda (prefix, environments, sha256 of
    the environment files last applied), Docker (server version, buildx, contexts) and the buildx
    ``builder`` (driver, nodes and their platforms). ``~/`` paths are expanded on the host.
    """

    def command(self, conda_prefix: str = "~/miniforge3", ohmyzsh_dir: str = "~/.oh-my-zsh",
                builder: str = "archfleet", block_files: tuple[str, ...] = (),
                managed_files: tuple[str, ...] = ()) -> str:
        return laptop_state_command(conda_prefix, ohmyzsh_dir, builder, tuple(block_files), tuple(managed_files))

    def process(self, output: list[str]) -> LaptopFacts:
        single: dict[str, str] = {}
        many: dict[str, list[str]] = {}
        builder_lines: list[str] = []
        for raw in output:
            line = raw.rstrip("\n")
            if line.startswith("builder:"):
                builder_lines.append(line[len("builder:"):])
                continue
            key, sep, value = line.partition("=")
            if not sep:
                continue
            many.setdefault(key, []).append(value)
            single.setdefault(key, value)

        def pairs(key: str) -> dict[str, str]:
            result = {}
            for item in many.get(key, []):
                first, _, second = item.partition(" ")
                result[second] = first
            return result

        driver, nodes = _builder(builder_lines)
        kernel = single.get("kernel", "")
        return {
            "kernel": kernel,
            "machine": single.get("machine", ""),
            "user": single.get("user", ""),
            "uid": int(single.get("uid", "-1") or -1),
            "home": single.get("home", ""),
            "os_id": single.get("os_id", "").strip('"') or None,
            "os_codename": single.get("os_codename", "").strip('"') or None,
            "login_shell": single.get("login_shell") or None,
            "sudo": single.get("sudo") == "yes",
            "init_system": single.get("init", "none"),
            "command_line_tools": (single.get("clt") == "yes") if kernel == "Darwin" else None,
            "brew": single.get("brew") or None,
            "formulae": many.get("formula", []),
            "casks": many.get("cask", []),
            "taps": many.get("tap", []),
            "debs": many.get("deb", []),
            "blocks": {path: digest for digest, path in
                       ((v.partition(" ")[0], v.partition(" ")[2]) for v in many.get("block", []))},
            "files": {path: digest for digest, path in
                      ((v.partition(" ")[0], v.partition(" ")[2]) for v in many.get("file", []))},
            "ohmyzsh_dir": single.get("ohmyzsh_dir", ""),
            "ohmyzsh": single.get("ohmyzsh") == "yes",
            "conda_prefix": single.get("conda_prefix", ""),
            "conda": single.get("conda") == "yes",
            "conda_envs": many.get("conda_env", []),
            "env_files": pairs("env_file"),
            "docker_server": single.get("docker_server") or None,
            "buildx_version": _buildx_version(single.get("buildx")),
            "contexts": {name: endpoint for name, _, endpoint in
                         (c.partition(" ") for c in many.get("context", []))},
            "builder_driver": driver,
            "builder_nodes": nodes,
        }


def _buildx_version(line: str | None) -> str | None:
    words = (line or "").split()
    return words[1].lstrip("v") if len(words) > 1 else None

