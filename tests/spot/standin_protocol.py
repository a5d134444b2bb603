"""How a test talks to the EC2 stand-in server (``moto_fleet_upkeep_standin``) beyond the EC2 API itself.
Kept apart so that the test process does not import moto to know it."""

# POST ?action=ACTION&code=CODE&times=N arms failing calls; DELETE disarms all.
FAILURE_PATH = "/archfleet-standin/fail"
# PUT /archfleet-standin/console-output/INSTANCE_ID with the text as body: what GetConsoleOutput answers for it.
CONSOLE_PATH = "/archfleet-standin/console-output/"
