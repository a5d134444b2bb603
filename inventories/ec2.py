"""pyinfra inventory of an EC2 spot fleet's running instances, found with boto3 by the tag archfleet:fleet=NAME.

    ARCHFLEET_EC2_FLEET=ci-arm pyinfra inventories/ec2.py deploys/host.py

As a fleet file's inventory (``inventory: inventories/ec2.py``, or a path to it), its instances get what lab hosts
get: ``archfleet hosts bootstrap`` (deploys/host.py) gives each the fleet file's ``registry:`` CA and login (this
inventory carries no registry host data) and the spot watcher with the stop order of the fleet's services on it;
SSH user, sudo and host keys come from the fleet file's ``ssh:``; ``archfleet sync`` and ``verify`` run on them:

    ARCHFLEET_FLEET=fleet.yaml ARCHFLEET_EC2_FLEET=ci-arm archfleet hosts bootstrap

Groups: ``arm64`` / ``amd64`` (architecture), ``spot`` / ``on_demand`` (lifecycle), and one per role tag
(``archfleet:role``, e.g. ``ci-runner``). Hosts are named by instance id; host data carries ``ec2_instance_id``,
``ec2_instance_type``, ``ec2_availability_zone``, ``ec2_lifecycle``, ``ec2_arch``, ``role``, and ``spot: True``
on spot instances (the host deploy installs the interruption watcher there).

Settings (environment):
    ARCHFLEET_EC2_FLEET       the spot fleet's name (required)
    ARCHFLEET_EC2_REGION      default: AWS_REGION, else boto3's default region
    ARCHFLEET_EC2_ADDRESS     which address to connect to: auto (public IP, else private IP), public_ip, private_ip,
                              public_dns, private_dns, or tag:NAME (a tag holding the address, e.g. behind a bastion)
                              An instance whose address (a tag's value above all: anyone who may tag instances
                              writes it) is not a host name or IP address is left out, said on stderr.
    ARCHFLEET_EC2_SSH_USER    e.g. admin (Debian AMIs); ARCHFLEET_EC2_SSH_KEY: a private key file (host data: both
                              win over the fleet file's ssh: section)
    ARCHFLEET_EC2_METADATA_URL  the metadata endpoint the watcher polls (default http://169.254.169.254)
Credentials and endpoint come from boto3's own configuration (AWS_PROFILE, AWS_ENDPOINT_URL, ...).
Host data also carries ``ec2_region``: archfleet reads a new instance's host keys from its console output there
before its first connection (archfleet.spot.host_keys).
"""

import os

from archfleet.spot.discovery import ec2_inventory

_groups = ec2_inventory(dict(os.environ))

arm64 = _groups.pop("arm64")
amd64 = _groups.pop("amd64")
spot = _groups.pop("spot")
on_demand = _groups.pop("on_demand")
# One group per role tag (names are the tag's values).
globals().update(_groups)
