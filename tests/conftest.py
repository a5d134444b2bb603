"""Shared fixtures. Tests marked ``lab`` run against the real local lab, which the session brings up
(`archfleet lab up` is idempotent and takes about a second when the lab is already up)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from archfleet.lab.state import LabState
from tests.lab.support import HostBootstrap


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> LabState:
    """The lab, up, with no service on any host: a lab left behind by a run that was killed before its clean-up
    (or by `make demo`) would otherwise show its containers as "kept undeclared" in every sync's report."""
    from archfleet.lab import lab as lab_module
    from tests.lab.support import remove_every_service

    state = lab_module.up()
    cleared = remove_every_service(tmp_path_factory.mktemp("lab-start"))
    assert cleared.returncode == 0, f"removing the services a run left on the lab failed:\n{cleared.stderr[-3000:]}"
    return state


@pytest.fixture(scope="session")
def host_bootstrap() -> HostBootstrap:
    """Call ``host_bootstrap.ensure()`` where a module's tests need the lab's amd64 and arm64 hosts bootstrapped
    (after any ``lab up`` that adds hosts)."""
    return HostBootstrap()


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """archfleet's per-user cache (build logs, the reads a sync remembers for the next one) in the session's own
    folder, for every command the tests run: they leave nothing in the user's ``~/.cache``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield
