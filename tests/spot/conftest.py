"""An EC2 endpoint for the spot tests: moto_server in its own process on a free loopback port (with the two
EC2 Fleet behaviours it lacks, see ``moto_fleet_upkeep_standin``), reached only through boto3's own configuration:
``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION`` and fake credentials in the environment. Stopped by pid at the end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.spot.standin_protocol import CONSOLE_PATH, FAILURE_PATH

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REGION = "eu-west-1"
SCARCE_TYPE = "t3.nano"  # the test server lets only one of these run at a time (an exhausted spot pool)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Endpoint:
    url: str
    env: dict[str, str]  # the environment archfleet and pyinfra run with
    ec2: Any  # a boto3 EC2 client for setting up and checking
    key_pair: str
    security_group: str
    subnets: list[str]

    def archfleet(self, *args: str, timeout: float = 300,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``archfleet ARGS`` with the endpoint's environment, or with ``env`` (a test's variation of it)."""
        return subprocess.run([str(BIN / "archfleet"), *args], cwd=PROJECT, env=self.env if env is None else env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def fail_calls(self, action: str, code: str = "IncorrectState", times: int = 1) -> None:
        """Make the next ``times`` calls of the EC2 ``action`` fail with ``code`` (the test server's stand-in)."""
        query = urllib.parse.urlencode({"action": action, "code": code, "times": times})
        urllib.request.urlopen(urllib.request.Request(f"{self.url}{FAILURE_PATH}?{query}", method="POST"),
                               timeout=10).read()

    def set_console_output(self, instance_id: str, text: str) -> None:
        """What ``GetConsoleOutput`` answers for the instance from now on (the test server's stand-in)."""
        urllib.request.urlopen(urllib.request.Request(f"{self.url}{CONSOLE_PATH}{instance_id}", data=text.encode(),
                                                      method="PUT"), timeout=10).read()

    def disarm_failures(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}{FAILURE_PATH}", method="DELETE"), timeout=10).read()


def aws_env(url: str) -> dict[str, str]:
    """Fake credentials and the endpoint, nothing from the user's own AWS setup (and no IMDS lookups)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=url, AWS_DEFAULT_REGION=REGION, AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent/aws-config", AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        AWS_MAX_ATTEMPTS="2",
    )
    return env


@pytest.fixture(scope="session")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    server_env = {**os.environ, "MOTO_ENABLE_KEYPAIR_VALIDATION": "true", "MOTO_ENABLE_AMI_VALIDATION": "true",
                  "ARCHFLEET_STANDIN_POOL_CAPACITY": f"{SCARCE_TYPE}=1"}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.spot.moto_fleet_upkeep_standin", "-H", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT, env=server_env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        env = aws_env(url)
        ec2 = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION,
        ).client("ec2", endpoint_url=url)
        ec2.create_key_pair(KeyName="archfleet-test")
        vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        group = ec2.create_security_group(GroupName="archfleet-test", Description="spot tests", VpcId=vpc)["GroupId"]
        subnets = sorted(ec2.describe_subnets()["Subnets"], key=lambda s: s["AvailabilityZone"])
        yield Endpoint(url, env, ec2, "archfleet-test", group, [s["SubnetId"] for s in subnets[:2]])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def failing(endpoint: Endpoint) -> Iterator[Endpoint]:
    """The endpoint, for a test that arms failing calls; whatever it armed and did not use is disarmed after it."""
    yield endpoint
    endpoint.disarm_failures()
