"""The benchmark's own arithmetic and parsing (its measurements need the lab: run the benchmark itself)."""

from __future__ import annotations

import io

import pytest
import yaml

from tests.benchmarks.ansible.inventory import PLAYBOOK
from tests.benchmarks.sync_speed import CONTAINER_TASK, AnsibleRecap, Row, SshCount, host_counts, print_table

RECAP = """\
PLAY RECAP *********************************************************************
amd64-1                    : ok=2    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0
amd64-2                    : ok=1    changed=1    unreachable=1    failed=1    skipped=0    rescued=0    ignored=0
"""


def test_recap_sums_every_host() -> None:
    recap = AnsibleRecap.parse(RECAP)
    assert (recap.changed, recap.failed) == (1, 2)


def test_output_without_a_recap_stops_the_benchmark() -> None:
    with pytest.raises(SystemExit, match="no PLAY RECAP"):
        AnsibleRecap.parse("ERROR! the playbook could not be found")


def test_the_container_task_is_in_the_playbook() -> None:
    assert CONTAINER_TASK in [task["name"] for task in yaml.safe_load(PLAYBOOK.read_text())[0]["tasks"]]


def test_host_counts() -> None:
    assert host_counts("16,4,16") == [4, 16]


def test_table_ratios_and_the_cost_of_each_extra_host() -> None:
    low = Row(4, floor_runs=[1.0, 3.0, 2.0], archfleet_runs=[3.0, 3.0, 9.0], ansible_runs=[30.0],
              first_sync_runs=[40.0, 50.0, 33.0], parallel_pull_runs=[20.0, 40.0, 30.0], image_size=100_000_000,
              pulled_by_archfleet={"a": 101_000_000, "b": 105_000_000, "c": 103_000_000},
              ssh_archfleet=SshCount([1, 1, 1], [1, 1, 2]))
    high = Row(16, floor_runs=[2.2], archfleet_runs=[4.2], ansible_runs=[42.0])
    out = io.StringIO()
    print_table([low, high], out)
    text = out.getvalue()
    first_row = text.splitlines()[1].split()
    assert first_row[:5] == ["4", "2.00", "s", "3.00", "s"]
    # paired: archfleet/floor per run 3/1, 3/3, 9/2 -> 3.00x (not 3/2); Ansible/archfleet 30/3; first sync over
    # pull per pair 40/20, 50/40, 33/30 -> 1.25x (not the medians' 40/30)
    assert "3.00x" in first_row and "10.00x" in first_row and "1.25x" in first_row
    assert "103.0 MB" in text and "1.03x" in text  # median bytes pulled per host vs image size
    assert "each extra host, 4 -> 16: floor +17 ms, archfleet no-op +100 ms, Ansible +1000 ms" in text
    assert "archfleet 1-2 command(s), 1 connection(s)" in text
