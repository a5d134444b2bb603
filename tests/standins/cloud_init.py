"""A STAND-IN for cloud-init's first boot of an EC2 instance, and for the parts of the metadata service it needs
(EC2 and cloud-init are out of reach here).

- ``RoleMetadataStandIn``: the instance metadata STAND-IN of tests/standins/instance_metadata.py (IMDSv2 only), plus
  the instance role's credentials (``iam/security-credentials/ROLE``), as EC2 serves them to an instance with an
  instance profile. The credentials are the test server's fake ones.
- ``Relay``: a TCP relay on the lab gateway to the test server (moto listens on loopback, which a lab host cannot
  reach); the boot script talks to it as it would to SSM's public endpoint.
- ``first_boot``: what cloud-init does with a shell-script user-data: it reads the instance's launch template's
  ``UserData`` through the public EC2 API (DescribeLaunchTemplateVersions), unpacks it (gzip, as cloud-init does),
  writes it to ``/var/lib/cloud/instance/user-data.txt`` (root-only) and runs it once as root, its output going to
  ``/var/log/cloud-init-output.log``.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import shutil
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archfleet.lab.state import LabHost, state_dir
from tests.lab.support import on_host
from tests.standins.instance_metadata import MetadataStandIn

ROLE = "archfleet-standin-role"
USER_DATA_PATH = "/var/lib/cloud/instance/user-data.txt"
OUTPUT_LOG = "/var/log/cloud-init-output.log"


@dataclass
class RoleMetadataStandIn(MetadataStandIn):
    """A STAND-IN metadata service that also hands out the instance role's credentials (IMDSv2 only)."""

    access_key: str = "testing"
    secret_key: str = "testing"
    session_token: str = "standin-session-token"
    credential_reads: int = 0
    credential_paths: list[str] = field(default_factory=list)
    instance_id: str = ""  # meta-data/instance-id, set by the test to the instance a lab host plays (404 unset)

    def answer(self, method: str, path: str, headers: Any) -> tuple[int, str]:
        base = "/latest/meta-data/iam/security-credentials/"
        if method == "GET" and path == "/latest/meta-data/instance-id" and self.instance_id:
            if headers.get("X-aws-ec2-metadata-token") not in self.tokens:
                self.unauthorized_reads += 1
                return 401, "Unauthorized"
            return 200, self.instance_id
        if method == "GET" and path.startswith(base):
            if headers.get("X-aws-ec2-metadata-token") not in self.tokens:
                self.unauthorized_reads += 1
                return 401, "Unauthorized"
            self.credential_paths.append(path)
            if path == base:
                return 200, ROLE
            if path == base + ROLE:
                self.credential_reads += 1
                return 200, json.dumps({
                    "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": self.access_key,
                    "SecretAccessKey": self.secret_key, "Token": self.session_token,
                    "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
                }, indent=2)
            return 404, "Not Found"
        return super().answer(method, path, headers)


class Relay:
    """TCP relay ``listen_address:port`` -> ``target`` (host, port), one thread pair per connection."""

    def __init__(self, listen_address: str, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server((listen_address, 0))
        self.address = f"{listen_address}:{self.server.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.server.close()


def launch_template_user_data(ec2: Any, instance_id: str) -> str:
    """The script of the launch template an instance was launched from (cloud-init reads it through IMDS; the
    stand-in asks the EC2 API for the same text)."""
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    template_id = tags.get("aws:ec2launchtemplate:id")
    version = tags.get("aws:ec2launchtemplate:version", "$Latest")
    if template_id is None:  # the test server does not always tag instances with their template: by architecture
        fleet = tags["archfleet:fleet"]
        arch = {"arm64": "arm64", "x86_64": "amd64"}[instance["Architecture"]]
        name = f"archfleet-{fleet}-{arch}"
        template = ec2.describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"][0]
        template_id, version = template["LaunchTemplateId"], "$Latest"
    data = ec2.describe_launch_template_versions(LaunchTemplateId=template_id, Versions=[version])[
        "LaunchTemplateVersions"][0]["LaunchTemplateData"]
    raw = base64.b64decode(data["UserData"])
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode()


@dataclass
class FirstBoot:
    returncode: int
    output: str  # the script's output, as cloud-init logs it
    seconds: float


def first_boot(host: LabHost, script: str, timeout: float = 900) -> FirstBoot:
    """Run a shell-script user-data on ``host`` as cloud-init does at first boot: once, as root."""
    started = time.monotonic()
    encoded = base64.b64encode(script.encode()).decode()
    command = (f"install -d -m 0700 /var/lib/cloud/instance && umask 077 && "
               f"echo {encoded} | base64 -d > {USER_DATA_PATH} && chmod 0700 {USER_DATA_PATH} && "
               f"{USER_DATA_PATH} > {OUTPUT_LOG} 2>&1; code=$?; cat {OUTPUT_LOG}; exit $code")
    result = on_host(host, command, timeout=timeout)
    return FirstBoot(result.returncode, result.stdout + result.stderr, time.monotonic() - started)


@dataclass
class BootedInstance:
    instance_id: str
    fresh: float  # when the lab host was fresh (after `lab reset`), epoch seconds
    booted: float  # when its first boot had run, epoch seconds
    script: str  # the user-data EC2 handed it
    boot: FirstBoot


def boot_fleet_instance(ec2: Any, fleet: str, host: LabHost, known_hosts: Path,
                        metadata: RoleMetadataStandIn | None = None) -> BootedInstance:
    """A fresh lab host (``lab reset``: a new VM) plays the fleet's one running instance and the first-boot
    STAND-IN runs the user-data EC2 hands it; ``known_hosts``: the lab's record of the new host key (so keys are
    still checked); ``metadata``: serves the instance's id. Asserts the boot joined."""
    from tests.lab.ec2_lab_address_map import map_fleet_to_lab
    from tests.lab.support import archfleet

    played = map_fleet_to_lab(ec2, fleet, [host])
    assert len(played) == 1, played
    instance_id = played[0].instance_id
    if metadata is not None:
        metadata.instance_id = instance_id
    archfleet("lab", "reset", host.name, check=True)
    fresh = time.time()
    shutil.copyfile(state_dir() / "ssh" / "known_hosts", known_hosts)
    known_hosts.chmod(0o600)
    script = launch_template_user_data(ec2, instance_id)
    boot = first_boot(host, script)
    booted = time.time()
    assert boot.returncode == 0, boot.output[-4000:]
    assert "archfleet-boot: joined" in boot.output, boot.output[-4000:]
    return BootedInstance(instance_id, fresh, booted, script, boot)


@contextlib.contextmanager
def instance_services(gateway: str, endpoint_url: str, env: dict[str, str], fleet: str
                      ) -> Iterator[tuple[RoleMetadataStandIn, dict[str, str]]]:
    """For lab hosts playing a spot fleet's instances: the metadata stand-in (with the role's credentials) and a
    relay to the EC2/SSM test server, both on the lab gateway; yields the stand-in and the environment archfleet
    runs with (``env``, the test server's, with the relay as endpoint and the EC2 inventory's settings)."""
    from tests.lab.ec2_lab_address_map import ADDRESS_MODE
    from tests.standins.instance_metadata import serve

    metadata = RoleMetadataStandIn()
    server = serve(metadata, gateway)
    port = urllib.parse.urlsplit(endpoint_url).port
    assert port is not None
    relay = Relay(gateway, ("127.0.0.1", port))
    try:
        yield metadata, {**env, "AWS_ENDPOINT_URL": f"http://{relay.address}", "ARCHFLEET_EC2_FLEET": fleet,
                         "ARCHFLEET_EC2_ADDRESS": ADDRESS_MODE, "PYTHONUNBUFFERED": "1",
                         "ARCHFLEET_EC2_METADATA_URL": f"http://{gateway}:{server.server_address[1]}"}
    finally:
        relay.close()
        server.shutdown()
        server.server_close()
