"""Which Linux distribution a host runs: ``/etc/os-release`` and the package managers present.

Not a fact of its own: facts that need the distro (``DockerEngine``, ``SpotWatcher``) run ``DISTRO_COMMAND`` inside
their one command and read its lines with ``distro_from``, so knowing the distro costs no extra round trip.
"""

from __future__ import annotations

import shlex
from typing import TypedDict

OS_RELEASE_PREFIX = "os-release:"
PACKAGE_MANAGERS = ("apt-get", "dnf", "yum", "zypper", "apk", "pacman")

# os-release(5): /etc/os-release, else /usr/lib/os-release; each line printed with a prefix, as the file says it.
DISTRO_COMMAND = (
    f"sed 's/^/{OS_RELEASE_PREFIX}/' /etc/os-release 2>/dev/null "
    f"|| sed 's/^/{OS_RELEASE_PREFIX}/' /usr/lib/os-release 2>/dev/null; "
    f"for m in {' '.join(PACKAGE_MANAGERS)}; do "
    'if command -v "$m" >/dev/null 2>&1; then echo "package_manager=$m"; fi; done'
)


class Distro(TypedDict):
    id: str | None  # ID: debian, ubuntu, amzn
    id_like: list[str]  # ID_LIKE: ["debian"], ["fedora"]
    version_id: str | None  # VERSION_ID: 12, 24.04, 2023
    pretty_name: str | None  # PRETTY_NAME, for messages
    package_managers: list[str]  # those of PACKAGE_MANAGERS on the PATH


def os_release_value(raw: str) -> str:
    """A value as os-release(5) writes it: shell quoting (``"..."``, ``'...'``, backslash escapes) or bare."""
    try:
        words = shlex.split(raw, comments=False, posix=True)
    except ValueError:  # an unbalanced quote: take the text as it stands
        return raw.strip().strip("\"'")
    return " ".join(words)


def distro_from(output: list[str]) -> Distro:
    """The distro from a fact's output lines (those ``DISTRO_COMMAND`` printed; other lines are ignored)."""
    release: dict[str, str] = {}
    managers: list[str] = []
    for line in output:
        if line.startswith(OS_RELEASE_PREFIX):
            text = line[len(OS_RELEASE_PREFIX):].strip()
            key, sep, raw = text.partition("=")
            if sep and key and not key.startswith("#"):
                release.setdefault(key.strip(), os_release_value(raw))
            continue
        key, sep, value = line.strip().partition("=")
        if sep and key == "package_manager" and value in PACKAGE_MANAGERS and value not in managers:
            managers.append(value)
    return {
        "id": release.get("ID") or None,
        "id_like": release.get("ID_LIKE", "").split(),
        "version_id": release.get("VERSION_ID") or None,
        "pretty_name": release.get("PRETTY_NAME") or None,
        "package_managers": managers,
    }


def is_distro_line(line: str) -> bool:
    """A line ``DISTRO_COMMAND`` printed (facts that embed it skip these when reading their own lines)."""
    return line.startswith(OS_RELEASE_PREFIX) or line.startswith("package_manager=")
