"""dnf command text (Amazon Linux 2023, Fedora's family), built in one place. Pure."""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand


def dnf_install(packages: list[str]) -> StringCommand:
    """Install without prompts (dnf refreshes its metadata itself when it is stale: no separate update)."""
    return StringCommand("dnf", "install", "-y", *(QuoteString(p) for p in packages))
