"""
A new laptop from scratch, and re-run any time with nothing changing: macOS on Apple Silicon or Debian/Ubuntu.

    pyinfra @local deploys/laptop.py                                  # on the machine itself
    pyinfra inventories/lab.py deploys/laptop.py --limit workstation-1
    archfleet laptop [--dry] [--profile FILE] [TARGET]

The profile (every knob: deploys/laptop_defaults.yaml) comes from, first found: ``$ARCHFLEET_LAPTOP_PROFILE``
(a YAML file), the host's ``laptop_profile`` data (a path), the fleet file's ``laptop:`` section, the defaults.

Everything is decided from the profile and ONE fact (facts.laptop.LaptopState): a no-op run costs one command
per host. The steps and their OS-specific choices are in tasks/laptop/plan.py and tasks/laptop/os_vars.py.
"""

import os

from pyinfra import host, inventory

from archfleet.fleet.laptop import find_profile
from archfleet.tasks.laptop.operations import current
from archfleet.tasks.laptop.plan import fact_args, plan


def ssh_of(name: str) -> tuple[str, str] | None:
    other = inventory.get_host(name, default=None)
    if other is None:
        return None
    return (other.data.get("ssh_user") or "root", other.data.get("ssh_hostname") or name)


profile = find_profile(os.environ.get("ARCHFLEET_LAPTOP_PROFILE") or host.data.get("laptop_profile"))
facts = current(fact_args(profile))
for step in plan(profile, facts, ssh_of):
    step.operation(name=step.name, **step.kwargs)
