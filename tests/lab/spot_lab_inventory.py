"""The lab's first spot-kind host as a spot instance, for tests/lab/test_spot_watcher.py (its ``spot_host``): the
lab inventory's data for it with the host data inventories/ec2.py gives a real spot instance (``spot: True``), plus
the test's own metadata endpoint (ARCHFLEET_TEST_METADATA_URL) and stop order (ARCHFLEET_TEST_STOP_ORDER,
comma-separated). Only the first: the test counts one host's changes, and other spot hosts (test_spot_user_data's
second) are in whatever state their own test left them."""

import os

from archfleet.lab.inventory import lab_groups

_extra = {
    "spot": True,
    "lifecycle": "spot",
    "spot_metadata_url": os.environ["ARCHFLEET_TEST_METADATA_URL"],
    "spot_stop_order": os.environ["ARCHFLEET_TEST_STOP_ORDER"],
}

spot = [(name, {**data, **_extra}) for name, data in lab_groups()["spot"][:1]]
