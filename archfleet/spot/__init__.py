"""EC2 spot fleets: ``archfleet spot up | status | down | prices``.

- ``connection``: a boto3 EC2 client from boto3's own configuration (profiles, ``AWS_REGION`` /
  ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_EC2``), EC2 errors as one-line failures;
- ``plan``: pure builders of launch-template data, fleet requests and the comparisons that decide changes;
- ``fleets``: up (create or reconcile), status, down, against the endpoint;
- ``discovery``: a fleet's instances as rows (used by status and ``inventories/ec2.py``);
- ``prices``: current spot prices from price history (pure) and the cheapest choice.

Everything a fleet creates carries the tag ``archfleet:fleet=<name>``; that tag is how it is found again.
"""
