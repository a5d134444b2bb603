"""The lab's cloud-kind hosts (root login off, ``admin`` with passwordless sudo) for tests/lab/test_ssh_identity.py,
with only their address and the registry's data: who logs in, with which key, through sudo and against which
known_hosts comes from the test's fleet file (its ``ssh:`` section), as for a user's own cloud hosts."""

from archfleet.lab.inventory import lab_groups

_FROM_THE_FLEET_FILE = {"ssh_user", "_sudo", "ssh_key", "ssh_known_hosts_file", "ssh_strict_host_key_checking"}

cloud = [(name, {k: v for k, v in data.items() if k not in _FROM_THE_FLEET_FILE})
         for name, data in lab_groups()["cloud"]]
