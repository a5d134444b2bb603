"""Driving the lab's CI (buildbot master + a runner per host) from outside: send a change, read the results.

Both run inside the master's container (`docker exec`), reading the password from the master's mounted secret
file, so it is never on a command line.
"""

from __future__ import annotations

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
