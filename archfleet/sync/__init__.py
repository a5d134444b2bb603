"""`archfleet sync`: one pipeline from the fleet file to every host running its services.

- ``pipeline``: fleet + each host's state -> one plan per host (tags pinned once per sync);
- ``plan``: the pure per-host decisions and the rollout's batches;
- ``hosts``: running steps on many hosts at once through pyinfra's API, each bounded in time;
- ``rollout``: read, plan, pull, switch in batches behind a canary, roll back, finalize;
- ``report``: one line (or JSON) per host.
"""
