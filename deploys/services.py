"""
Services: every host runs its declared services from their multi-arch tags, each pulling the image built for
its own platform (pinned by digest), proven by the registry pre-flight before anything is touched.

    pyinfra inventories/lab.py deploys/services.py            # fleet file: $ARCHFLEET_FLEET or ./fleet.yaml
    archfleet sync [--dry] [--prune] [--limit HOST|GROUP]     # the same plan, rolled out behind a canary

This plain pyinfra deploy executes each host's plan (archfleet.sync.pipeline) on all hosts at once; `archfleet
sync` executes the same plans in batches with a circuit breaker and rollback. Per host, a no-op run costs one
command (the ServicesState fact). Host data ``archfleet_prune: true`` removes containers of undeclared services.
"""

from pyinfra import host

from archfleet.errors import ArchfleetError
from archfleet.facts.services import ServicesState
from archfleet.fleet import fleet_for_deploy
from archfleet.sync.lock import lock_for_deploy
from archfleet.sync.operation import services_converged
from archfleet.sync.pipeline import plan_one_host

# The fleet file first: a file that does not load (exit 2) stops the deploy before any host is locked.
fleet = fleet_for_deploy(host.data.get("archfleet_fleet"))

# The fleet lock (docs/lock.md): this host's, taken before the first operation, released after the last; the
# services state below is read under it.
lock_for_deploy("pyinfra deploys/services.py")

state = host.get_fact(ServicesState)
plan, failure = None, None
if state is None:
    failure = "could not read the services state of this host"
elif not state["engine_running"]:
    failure = "the Docker engine does not answer: run deploys/host.py first"
else:
    try:
        plan = plan_one_host(fleet, host.name, state, prune=bool(host.data.get("archfleet_prune")))
    except ArchfleetError as error:
        failure = str(error)
services_converged(
    name="Services run their images for this host's platform", plan=plan, failure=failure, timeouts=fleet.timeouts,
)
