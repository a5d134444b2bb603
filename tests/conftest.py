"""Shared fixtures. Tests marked ``lab`` run against the real local lab, which the session brings up
(`archfleet lab up` is idempotent and takes about a second when the lab is already up)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from archfleet.lab.state import LabState


@pytest.fixture(scope="session")
def lab() -> LabState:
    from archfleet.lab import lab as lab_module

    return lab_module.up()


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """archfleet's per-user cache (build logs, the reads a sync remembers for the next one) in the session's own
    folder, for every command the tests run: they leave nothing in the user's ``~/.cache``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield
