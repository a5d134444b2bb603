"""pyinfra inventory of the running local lab, hosts grouped by architecture.

    pyinfra inventories/lab.py fact server.Arch

Reads the lab's record (root-only; written by `archfleet lab up`).
"""

from archfleet.lab.inventory import lab_groups

_groups = lab_groups()

amd64 = _groups["amd64"]
arm64 = _groups["arm64"]
