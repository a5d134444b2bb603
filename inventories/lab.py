"""pyinfra inventory of the running local lab. Groups: ``amd64`` and ``arm64`` (the fleet's servers, by
architecture), ``workstation`` (bare Debian for the laptop profile) and ``spot`` (hosts playing spot instances).

    pyinfra inventories/lab.py fact server.Arch

Reads the lab's record (root-only; written by `archfleet lab up`).
"""

from archfleet.lab.inventory import lab_groups

_groups = lab_groups()

amd64 = _groups["amd64"]
arm64 = _groups["arm64"]
workstation = _groups["workstation"]
spot = _groups["spot"]
