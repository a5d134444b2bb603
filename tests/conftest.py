"""Shared fixtures. Tests marked ``lab`` run against the real local lab, which the session brings up
(`archfleet lab up` is idempotent and takes about a second when the lab is already up)."""

from __future__ import annotations

import pytest

from archfleet.lab.state import LabState


@pytest.fixture(scope="session")
def lab() -> LabState:
    from archfleet.lab import lab as lab_module

    return lab_module.up()
