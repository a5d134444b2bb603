"""apt command text (Debian/Ubuntu), built in one place. Pure."""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand

APT_ENV = "DEBIAN_FRONTEND=noninteractive"
APT_OPTIONS = '-o Dpkg::Options::="--force-confdef" -o Dpkg::Options::="--force-confold"'


def sudo_prefix(root: bool) -> list[str]:
    """Nothing when the deploy runs as root; ``sudo -n`` (never a prompt) for a user."""
    return [] if root else ["sudo", "-n"]


def apt_update(root: bool = True) -> StringCommand:
    return StringCommand(*sudo_prefix(root), "apt-get", "update", "-q")


def apt_install(packages: list[str], root: bool = True, suite: str | None = None) -> StringCommand:
    """Install without prompts, keeping existing config files; ``suite`` picks a release (``-t trixie``)."""
    target = ["-t", QuoteString(suite)] if suite else []
    return StringCommand(*sudo_prefix(root), "env", APT_ENV, "apt-get", "install", "-y", "-q",
                         "--no-install-recommends", APT_OPTIONS, *target, *(QuoteString(p) for p in packages))
