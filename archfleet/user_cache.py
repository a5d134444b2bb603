"""Where archfleet keeps a user's own cache: ``$XDG_CACHE_HOME/archfleet`` (default ``~/.cache/archfleet``);
the image builds keep their logs there (archfleet.images.engine)."""

from __future__ import annotations

import os


def user_cache_dir(*parts: str) -> str:
    """The path of ``parts`` under the user's archfleet cache (nothing is created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "archfleet", *parts)
