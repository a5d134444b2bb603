"""EC2 spot fleets: ``archfleet spot up | status | down | prices``.

- ``connection``: boto3 EC2 (and SSM) clients from boto3's own configuration (profiles, ``AWS_REGION`` /
  ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_EC2`` / ``AWS_ENDPOINT_URL_SSM``), their
  errors as one-line failures naming the endpoint (bad input exit 2, anything else exit 1);
- ``plan``: pure builders of launch-template data, fleet requests and the comparisons that decide changes;
- ``fleets``: each selected fleet checked first (``check_fleet``), then up (create or reconcile), status, down
  (which goes on past a failed call and reports what is left), against the endpoint;
- ``discovery``: a fleet's instances as rows (used by status and ``inventories/ec2.py``);
- ``instance_types``: the declared types checked against EC2 first, by every command (bad input, exit 2);
- ``prices``: current spot prices from price history (pure) and the cheapest choice.

Everything a fleet creates carries the tag ``archfleet:fleet=<name>``; that tag is how it is found again.
"""
