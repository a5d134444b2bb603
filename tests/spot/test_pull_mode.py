"""Pull mode (issue 31): the fleet file's `converge:` and `pull_interval:` keys, and the pull agent's text where the
text is the claim (it reads only release/current; the boot script installs it only in pull mode, with a timer or
an init script looping with sleep). The agent's behaviour on a host is tests/lab/test_pull_mode.py's."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from archfleet.fleet import load_fleet
from archfleet.schema import SchemaError
from archfleet.spot.user_data import BootPlan, boot_script, pull_agent_script
from archfleet.tasks import pull_agent_commands

FLEET = """\
registry: {{lab: true}}
spot_fleets:
  edge:
    target_capacity: 1
    instance_types: [t3.small]
    ami: {{amd64: ami-0123456789abcdef0}}
{extra}"""


def load(tmp_path: Path, extra: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.format(extra=extra))
    return load_fleet(path).spot_fleets["edge"]


def test_converge_defaults_to_push(tmp_path: Path) -> None:
    spec = load(tmp_path, "")
    assert (spec.converge, spec.pulls, spec.pull_interval) == ("push", False, 60)


def test_converge_pull_with_its_interval(tmp_path: Path) -> None:
    spec = load(tmp_path, "    user_data: true\n    converge: pull\n    pull_interval: 15\n")
    assert (spec.converge, spec.pulls, spec.pull_interval) == ("pull", True, 15)


@pytest.mark.parametrize(("extra", "line", "message"), [
    ("    converge: pull\n", 7, "pull needs `user_data: true`"),
    ("    user_data: true\n    converge: sideways\n", 8, "expected push or pull, got 'sideways'"),
    ("    user_data: true\n    converge: pull\n    pull_interval: 2\n", 9, "must be 5 or more"),
    ("    pull_interval: 30\n", 7, "only a fleet with `converge: pull`"),
])
def test_bad_converge_names_file_line_and_key(tmp_path: Path, extra: str, line: int, message: str) -> None:
    with pytest.raises(SchemaError) as raised:
        load(tmp_path, extra)
    text = str(raised.value)
    assert f"fleet.yaml:{line}" in text and message in text, text


PLAN = BootPlan(fleet="edge", arch="amd64", region="eu-west-1", metadata_url="http://169.254.169.254",
                ssm_endpoint="https://ssm.eu-west-1.amazonaws.com", ecr_endpoint="https://api.ecr.eu-west-1.amazonaws.com",
                ec2_endpoint="https://ec2.eu-west-1.amazonaws.com", parameter_prefix="/archfleet/edge")


def test_push_mode_boot_script_has_no_agent() -> None:
    assert pull_agent_commands.NAME not in boot_script(PLAN)


def test_pull_mode_boot_script_installs_the_agent_after_the_release_runs() -> None:
    script = boot_script(replace(PLAN, pull_interval=30))
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert script.index(". \"$SPOT_DIR/release.sh\"") < script.index("say 'the pull agent, every 30 s'")
    assert script.index("the pull agent did not start") < script.index("say joined")
    for path in (pull_agent_commands.AGENT_PATH, pull_agent_commands.TIMER_PATH, pull_agent_commands.UNIT_PATH,
                 pull_agent_commands.INIT_SCRIPT_PATH, pull_agent_commands.LOOP_PATH):
        assert f"> {path}\n" in script, path


def test_the_boot_records_its_release_as_the_first_converge_in_pull_mode_only() -> None:
    """A freshly booted pull instance is converged (verify reads archfleet:converge), recorded once its release ran."""
    pulled = boot_script(replace(PLAN, pull_interval=30))
    record = 'tag_instance archfleet%3Aconverge "$result"'
    assert pulled.index(". \"$SPOT_DIR/release.sh\"") < pulled.index(record) < pulled.index("the pull agent, every")
    assert 'result="$RELEASE $(date -u +%Y-%m-%dT%H:%M:%SZ) ok"' in pulled
    assert record not in boot_script(PLAN)


def test_the_agent_follows_only_release_current() -> None:
    agent = pull_agent_script(PLAN, 30)
    subprocess.run(["sh", "-n"], input=agent, text=True, check=True)
    assert "RELEASE_POINTER=/archfleet/edge/release/current" in agent
    # The one parameter it reads itself is the pointer; the one release it fetches is the pointer's.
    body = pull_agent_commands.AGENT_BODY
    assert re.findall(r'ssm_value "([^"]+)"', body) == ["$RELEASE_POINTER"]
    assert re.findall(r'fetch_release "([^"]+)"', body) == ["$RELEASE"]
    assert "GetParametersByPath" not in agent and "ssm_get" not in pull_agent_commands.AGENT_BODY
    assert agent.endswith(pull_agent_commands.AGENT_BODY)
    assert "PULL_INTERVAL=30" in agent and "CONVERGE_TAG_KEY=archfleet%3Aconverge" in agent


def test_timer_and_init_loop_use_the_interval() -> None:
    systemd = pull_agent_commands.runner_files("systemd", 45)
    assert "OnUnitActiveSec=45s" in systemd[pull_agent_commands.TIMER_PATH][0]
    assert "Type=oneshot" in systemd[pull_agent_commands.UNIT_PATH][0]
    sysvinit = pull_agent_commands.runner_files("sysvinit", 45)
    assert sysvinit[pull_agent_commands.INTERVAL_PATH][0] == "45\n"
    assert 'sleep "$1"' in sysvinit[pull_agent_commands.LOOP_PATH][0]
    for text, _ in sysvinit.values():
        if text.startswith("#!"):
            subprocess.run(["sh", "-n"], input=text, text=True, check=True)
