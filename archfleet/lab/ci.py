"""Driving the lab's CI (buildbot master + a runner per host) from outside: send a change, read the results.

Both run inside the master's container (`docker exec`), reading the password from the master's mounted secret
file, so it is never on a command line.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from archfleet.errors import OperationFailed
from archfleet.lab.hosts import ssh_argv
from archfleet.lab.state import LabPaths, LabState, state_dir

SEND_CHANGE = """
from twisted.internet import reactor
from buildbot.clients.sendchange import Sender
with open("/run/secrets/worker_password") as secret:
    password = secret.read().strip()
sender = Sender("127.0.0.1:{port}", auth=("archfleet", password))
result = []
deferred = sender.send("main", "{revision}", "archfleet: build on every runner", ["README"], who="archfleet")
deferred.addCallbacks(lambda _: result.append("sent"), lambda failure: result.append(str(failure.value)))
deferred.addBoth(lambda _: reactor.stop())
reactor.run()
print(result[0] if result else "no answer")
raise SystemExit(0 if result == ["sent"] else 1)
"""

BUILD_RESULTS = """
import json, sqlite3
db = sqlite3.connect("file:/var/lib/buildbot/master/state/state.sqlite?mode=ro", uri=True)
rows = db.execute(
    "select builders.name, builds.number, builds.results, build_properties.value from builds"
    " join builders on builders.id = builds.builderid"
    " left join build_properties on build_properties.buildid = builds.id and build_properties.name = 'machine'"
    " where builds.complete_at is not null order by builds.id"
).fetchall()
print(json.dumps([[name, number, results, json.loads(value) if value else None]
                  for name, number, results, value in rows]))
"""


def send_change_script(revision: str, port: int = 9989) -> str:
    return SEND_CHANGE.replace("{port}", str(port)).replace("{revision}", revision)


MASTER_CONTAINER = "archfleet-ci-master"


def python_in_master(state: LabState, master_address: str, script: str) -> str:
    """Run a Python script inside the CI master's container on a lab host (over the lab's checked SSH)."""
    argv = ssh_argv(LabPaths(state_dir()), state.ssh_user, master_address,
                    f"docker exec -i {MASTER_CONTAINER} python3 -")
    return subprocess.run(argv, input=script, capture_output=True, text=True, timeout=120, check=False).stdout


def build_results(state: LabState, master_address: str) -> list[list[Any]]:
    """Completed builds: ``[builder, number, results (0 = success), machine]`` each."""
    return list(json.loads(python_in_master(state, master_address, BUILD_RESULTS) or "[]"))


def build_on_every_runner(state: LabState, master_address: str, builders: set[str],
                          timeout: float = 300) -> list[list[Any]]:
    """Send one change and wait until each of ``builders`` finished a build for it; returns those new builds.

    The runners connect a few seconds after the master is up; a change the master took still builds on them then.
    Raises OperationFailed when the master does not take the change in time.
    """
    before = {(row[0], row[1]) for row in build_results(state, master_address)}
    revision = f"archfleet-{time.time_ns()}"
    deadline = time.monotonic() + timeout
    sent = False
    new: list[list[Any]] = []
    while time.monotonic() < deadline:
        if not sent:
            sent = python_in_master(state, master_address, send_change_script(revision)).strip() == "sent"
        else:
            new = [row for row in build_results(state, master_address) if (row[0], row[1]) not in before]
            if {row[0] for row in new} >= builders:
                break
        time.sleep(2)
    if not sent:
        raise OperationFailed(f"CI: the master on {master_address} did not take a change in {timeout:.0f}s")
    return new
