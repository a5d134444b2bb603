"""Spec-file tests for operations, in the style of pyinfra's own (its tests/test_operations.py).

Each ``tests/operations/<module>.<operation>/<case>.json`` names an operation of ``tasks.<module>`` and holds:

- ``arguments``: the keyword arguments the operation is called with;
- ``facts``: what the fake host answers (see tests/operation_specs.py for keys and defaults);
- ``commands``: the exact commands expected, in order (``["upload", text, destination]`` for an upload);
- ``noop``: the reason given when there is nothing to do (required when ``commands`` is empty), or a list of them
  in order when the operation gives several;
- or ``exception``: ``{"name": "OperationFailed", "message": "..."}`` when the operation must refuse.

Adding a case is adding a file; any engineer's operation in tasks/ can have a folder.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.operation_specs import FakeHost, run_operation

SPEC_ROOT = Path(__file__).parent / "operations"
CASES = sorted(SPEC_ROOT.glob("*/*.json"))


def load_operation(folder: str) -> Any:
    module_name, operation_name = folder.rsplit(".", 1)
    return getattr(importlib.import_module(f"archfleet.tasks.{module_name}"), operation_name)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_operation_spec(case: Path) -> None:
    spec = json.loads(case.read_text())
    operation = load_operation(case.parent.name)
    host = FakeHost(facts=spec.get("facts", {}))
    if "exception" in spec:
        with pytest.raises(Exception) as raised:
            run_operation(operation, spec.get("arguments", {}), host)
        assert type(raised.value).__name__ == spec["exception"]["name"]
        assert str(raised.value) == spec["exception"]["message"]
        return
    result = run_operation(operation, spec.get("arguments", {}), host)
    assert result.commands == spec["commands"]
    if not result.commands:
        assert "noop" in spec, "a case without commands must give the noop reason"
    if "noop" in spec:
        assert result.noops == (spec["noop"] if isinstance(spec["noop"], list) else [spec["noop"]])


def test_spec_folders_name_real_operations() -> None:
    for folder in sorted({c.parent.name for c in CASES}):
        assert hasattr(load_operation(folder), "_inner"), f"{folder} is not a pyinfra operation"
