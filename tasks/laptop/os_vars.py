"""OS-specific choices of the laptop deploy, made ONCE from the host's facts (like per-OS vars files in Ansible).

Everything else in tasks/laptop reads these values instead of asking "is this a Mac?" again.
"""

from __future__ import annotations

from dataclasses import dataclass

from archfleet.errors import OperationFailed
from archfleet.facts.laptop import LaptopFacts
from archfleet.fleet.laptop import LaptopProfile

# The conda installers' names for a platform (the {platform} of the installer URL).
CONDA_PLATFORMS = {
    ("Darwin", "arm64"): "MacOSX-arm64",
    ("Darwin", "x86_64"): "MacOSX-x86_64",
    ("Linux", "x86_64"): "Linux-x86_64",
    ("Linux", "aarch64"): "Linux-aarch64",
}
CONDA_URLS = {
    "miniforge": "https://github.com/conda-forge/miniforge/releases/download/{version}/Miniforge3-{version}-{platform}.sh",
    "miniconda": "https://repo.anaconda.com/miniconda/Miniconda3-py312_{version}-{platform}.sh",
}
# Debian releases without a docker-buildx package of their own; their buildx comes from the next suite.
BUILDX_FROM_NEXT_SUITE = {("debian", "bookworm")}
LINUX_NEEDS = ["zsh", "git", "curl", "ca-certificates"]


@dataclass(frozen=True)
class OsVars:
    family: str  # "macos" or "debian"
    root: bool  # True: commands that need root run as they are; False: through `sudo -n`
    zsh: str  # the login shell to set
    brew: str | None  # Homebrew's brew (macOS)
    brew_prefix: str | None
    packages: list[str]  # apt packages (Debian) or Homebrew formulae (macOS)
    casks: list[str]
    conda_platform: str
    conda_installer_url: str
    buildx_mode: str  # "append": one docker-container builder, nodes appended; "contexts": see docs/laptop.md
    buildx_suite: str | None  # Debian: the suite docker-buildx comes from (None: the distribution's own)
    docker_start: str  # "engine" (init system), "colima", or "desktop" (the user opens Docker Desktop)
    shell_prefix: str  # prepended to docker commands (Homebrew's bin on PATH on macOS)
    buildx_plugin: str | None = None  # a buildx binary docker must be shown (Homebrew's, with colima)


def conda_platform(facts: LaptopFacts) -> str:
    try:
        return CONDA_PLATFORMS[(facts["kernel"], facts["machine"])]
    except KeyError:
        raise OperationFailed(f"no conda installer for {facts['kernel']} {facts['machine']}") from None


def os_vars(profile: LaptopProfile, facts: LaptopFacts) -> OsVars:
    platform = conda_platform(facts)
    url = (profile["conda_installer_url"] or CONDA_URLS[profile["conda_distribution"]]).format(
        version=profile["conda_version"], platform=platform)
    docker = profile["docker_enabled"]
    if facts["kernel"] == "Darwin":
        prefix = profile["homebrew_prefix"]
        colima = docker and profile["docker_runtime"] == "colima"
        formulae = list(profile["homebrew_formulae"])
        formulae += [f for f in (["colima", "docker", "docker-buildx"] if colima else []) if f not in formulae]
        casks = list(profile["homebrew_casks"])
        if docker and not colima and profile["docker_desktop_cask"] not in casks:
            casks.append(profile["docker_desktop_cask"])
        return OsVars(
            family="macos", root=facts["uid"] == 0, zsh="/bin/zsh", brew=f"{prefix}/bin/brew", brew_prefix=prefix,
            packages=formulae, casks=casks, conda_platform=platform, conda_installer_url=url,
            buildx_mode="append", buildx_suite=None, docker_start="colima" if colima else "desktop",
            shell_prefix=f'PATH="{prefix}/bin:$PATH"',
            buildx_plugin=f"{prefix}/opt/docker-buildx/bin/docker-buildx" if colima else None,
        )
    if facts["kernel"] != "Linux" or "dpkg" not in facts["debs"]:
        raise OperationFailed(f"the laptop deploy supports macOS and Debian/Ubuntu, not this {facts['kernel']} host")
    packages = list(profile["apt_packages"])
    packages += [p for p in LINUX_NEEDS + (["docker.io"] if docker else []) if p not in packages]
    source = profile["docker_buildx_source"]
    release = (facts["os_id"] or "", facts["os_codename"] or "")
    suite = profile["docker_buildx_suite"] if source == "suite" or (
        source == "auto" and release in BUILDX_FROM_NEXT_SUITE) else None
    return OsVars(
        family="debian", root=facts["uid"] == 0, zsh="/usr/bin/zsh", brew=None, brew_prefix=None,
        packages=packages, casks=[], conda_platform=platform, conda_installer_url=url,
        buildx_mode="contexts", buildx_suite=suite, docker_start="engine", shell_prefix="",
    )
