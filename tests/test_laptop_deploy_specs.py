"""Deploy-level spec tests for deploys/laptop.py: a profile and the facts of a fake host in, every step out.

Each ``tests/deploys/laptop/<case>.json`` holds:

- ``profile``: the laptop profile (the keys of deploys/laptop_defaults.yaml), as its YAML would read;
- ``environment_files``: name -> text of the environment files the profile's ``conda_environments`` point at
  (written to a temporary folder the profile's relative paths resolve against);
- ``inventory``: inventory host name -> [ssh user, address], for ``docker_buildx_remote_nodes`` given by host;
- ``facts``: what the fake host answers (tests/operation_specs.py);
- ``steps``: every step of the deploy in order: ``{"name", "commands"}``, ``{"name", "commands": [], "noop"}``,
  or ``{"name", "exception": {"name", "message"}}`` for the step that refuses (the deploy stops there).

The steps are planned by tasks.laptop.plan (as deploys/laptop.py does) and each operation is called against the
fake host, which also checks that the one LaptopState fact is gathered once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyinfra.context import ctx_host

from archfleet.fleet.laptop import parse_profile
from archfleet.schema import Mapping, parse_yaml
from archfleet.tasks.laptop.operations import current
from archfleet.tasks.laptop.plan import fact_args, plan
from tests.operation_specs import FakeHost, run_operation

SPEC_ROOT = Path(__file__).parent / "deploys" / "laptop"
CASES = sorted(SPEC_ROOT.glob("*.json"))


def run_deploy(spec: dict[str, Any], folder: Path) -> tuple[list[dict[str, Any]], FakeHost]:
    for name, text in spec.get("environment_files", {}).items():
        (folder / name).write_text(text)
    profile = parse_profile(Mapping(parse_yaml(json.dumps(spec.get("profile", {})), "profile.yaml")), folder)
    inventory = {name: (user, address) for name, (user, address) in spec.get("inventory", {}).items()}
    host = FakeHost(facts=spec["facts"])
    with ctx_host.use(host):
        facts = current(fact_args(profile))
        steps = plan(profile, facts, inventory.get)
    results: list[dict[str, Any]] = []
    for step in steps:
        try:
            result = run_operation(step.operation, step.kwargs, host)
        except Exception as error:  # the deploy stops at the step that refuses
            results.append({"name": step.name, "exception": {"name": type(error).__name__, "message": str(error)}})
            break
        entry: dict[str, Any] = {"name": step.name, "commands": result.commands}
        if result.noops:
            entry["noop"] = result.noops[0]
        results.append(entry)
    return results, host


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_laptop_deploy_spec(case: Path, tmp_path: Path) -> None:
    spec = json.loads(case.read_text())
    results, host = run_deploy(spec, tmp_path)
    assert results == spec["steps"]
    assert host.asked == ["laptop.LaptopState"], "the deploy must gather its one fact once"
    for step in results:
        assert step.get("commands") or "noop" in step or "exception" in step, f"{step['name']}: no commands, no reason"
