"""Spec-file tests for custom facts, in the style of pyinfra's own.

Each ``tests/facts/<module>.<FactClass>/<case>.json`` holds ``command`` (what the fact runs; optional
``arg`` for facts with arguments), ``output`` (the host's raw output lines) and ``fact`` (the parsed value).
Adding a case is adding a file.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

SPEC_ROOT = Path(__file__).parent / "facts"
CASES = sorted(SPEC_ROOT.glob("*/*.json"))


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_fact_spec(case: Path) -> None:
    module_name, class_name = case.parent.name.rsplit(".", 1)
    fact_class = getattr(importlib.import_module(f"archfleet.facts.{module_name}"), class_name)
    spec = json.loads(case.read_text())
    fact = fact_class()
    args = spec.get("arg", [])
    args = args if isinstance(args, list) else [args]
    if "command" in spec:
        assert str(fact.command(*args)) == spec["command"]
    assert fact.process(spec["output"]) == spec["fact"]


def test_every_fact_has_specs() -> None:
    """A fact without spec files is untested; the folder names must match real facts."""
    from pyinfra.api import FactBase

    for module_path in (Path(__file__).parent.parent / "facts").glob("*.py"):
        if module_path.stem == "__init__":
            continue
        module = importlib.import_module(f"archfleet.facts.{module_path.stem}")
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, FactBase) and value.__module__ == module.__name__:
                folder = SPEC_ROOT / f"{module_path.stem}.{name}"
                assert list(folder.glob("*.json")), f"no spec files in {folder}"
