"""The boot script (archfleet/spot/user_data.py): its secret-reading functions run here with curl against the
EC2/SSM/ECR test server (moto) and the metadata STAND-IN with role credentials; the builder's decisions (what is
inline, what comes from SSM, gzip past 16 KB, a syntax check of the whole script by sh)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import boto3
import pytest

from archfleet.errors import InputError
from archfleet.services.desired import DesiredContainer, managed_file
from archfleet.spot.user_data import (
    BOOT_FUNCTIONS,
    USER_DATA_LIMIT,
    BootPlan,
    BootRegistry,
    ReleasePlan,
    boot_script,
    decoded,
    encoded,
    release_script,
)
from tests.spot.conftest import REGION, Endpoint
from tests.standins.cloud_init import RoleMetadataStandIn
from tests.standins.instance_metadata import serve

SECRET = "s3cret-value with spaces\nand a second line"
KEY = bytes(range(32))  # the fleet's secret version key


def container(name: str, files: list[object]) -> DesiredContainer:
    return DesiredContainer(
        service=name, name=f"archfleet-{name}", tag="reg.test/archfleet/debian:bookworm",
        digest="sha256:" + "a" * 64, image="reg.test/archfleet/debian@sha256:" + "a" * 64,
        create_args=["--network", "host", "--restart", "unless-stopped"], command=["sleep", "infinity"],
        files=files, spec_hash="0123456789abcdef", healthcheck=None, wait_seconds=15, stop_order=10,  # type: ignore[arg-type]
    )


BOOT = BootPlan(fleet="ci", arch="arm64", region=REGION, metadata_url="http://169.254.169.254",
                ssm_endpoint="https://ssm.eu-west-1.amazonaws.com",
                ecr_endpoint="https://api.ecr.eu-west-1.amazonaws.com", ec2_endpoint="https://ec2.eu-west-1.amazonaws.com",
                parameter_prefix="/archfleet/ci")


def plan(**changes: object) -> ReleasePlan:
    secret = managed_file("web", "token", "/run/secrets/token", SECRET.encode(), True, KEY)
    config = managed_file("web", "config.json", "/etc/web/config.json", b'{"port": 80}\n', False, KEY)
    values: dict[str, object] = dict(
        fleet="ci", arch="arm64", metadata_url="http://169.254.169.254",
        registries=(BootRegistry("reg.test:5000", b"-----BEGIN CERTIFICATE-----\n", "archfleet",
                                 "/archfleet/ci/registry/reg.test_5000"),),
        containers=(container("web", [secret, config]),),
        secret_files={secret.host_path: "/archfleet/ci/arm64/services/web/token"},
        stop_order=("archfleet-web",),
    )
    values.update(changes)
    return ReleasePlan(**values)  # type: ignore[arg-type]


def test_the_scripts_are_valid_sh_hold_no_secret_and_read_it_from_ssm() -> None:
    boot = boot_script(BOOT)
    checked = subprocess.run(["sh", "-n"], input=boot, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "RELEASE_POINTER=/archfleet/ci/release/current" in boot and "RELEASES=/archfleet/ci/releases" in boot
    assert "web" not in boot and "docker create" not in boot  # the services are the release's
    script = release_script(plan())
    checked = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert SECRET not in script and base64.b64encode(SECRET.encode()).decode() not in script
    assert hashlib.sha256(SECRET.encode()).hexdigest()[:16] not in script  # its version is keyed (file_version)
    assert "ssm_get /archfleet/ci/arm64/services/web/token" in script
    assert "ssm_get /archfleet/ci/registry/reg.test_5000 /etc/archfleet/registry/reg.test:5000.password" in script
    assert base64.b64encode(b'{"port": 80}\n').decode() in script  # a plain rendered file is inline
    assert script.index("archfleet-pull") < script.index("archfleet-switch") < script.index("spot-watcher")


def test_a_secret_file_without_a_parameter_is_refused() -> None:
    with pytest.raises(InputError, match="has no SSM parameter"):
        release_script(plan(secret_files={}))


def test_a_long_script_is_gzipped_the_same_way_every_time() -> None:
    many = tuple(container(f"svc{i}", []) for i in range(12))
    script = boot_script(BOOT) + release_script(plan(containers=many, secret_files={}))
    assert len(script.encode()) > USER_DATA_LIMIT
    first, second = encoded(script), encoded(script)
    assert first == second and base64.b64decode(first)[:2] == b"\x1f\x8b"
    assert decoded(first) == script
    assert len(base64.b64decode(first)) < USER_DATA_LIMIT
    assert len(boot_script(BOOT).encode()) < USER_DATA_LIMIT / 2  # the user-data alone: the services are in SSM
    short = "#!/bin/sh\necho short\n"  # under the limit: as written
    assert base64.b64decode(encoded(short)).decode() == short


def run_boot_functions(endpoint: Endpoint, metadata_url: str, commands: str) -> subprocess.CompletedProcess[str]:
    text = "\n".join([BOOT_FUNCTIONS, f"METADATA_URL={metadata_url}", f"REGION={REGION}",
                      f"SSM_ENDPOINT={endpoint.url}", f"ECR_ENDPOINT={endpoint.url}", commands])
    env = {"PATH": os.environ["PATH"]}  # no AWS settings: only the instance role's credentials
    return subprocess.run(["sh", "-c", text], capture_output=True, text=True, check=False, timeout=60, env=env)


def test_the_boot_functions_read_a_securestring_and_an_ecr_password_with_the_instance_role(
        endpoint: Endpoint, tmp_path: Path) -> None:
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=REGION)
    ssm = session.client("ssm", endpoint_url=endpoint.url)
    ssm.put_parameter(Name="/archfleet/boot-test/secret", Type="SecureString", Overwrite=True,
                      Value=base64.b64encode(SECRET.encode()).decode())
    metadata = RoleMetadataStandIn()
    server = serve(metadata, "127.0.0.1")
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        read = run_boot_functions(endpoint, url, f"ssm_get /archfleet/boot-test/secret {tmp_path}/secret && "
                                                 f"ecr_password '' {tmp_path}/ecr && echo ok")
        assert read.returncode == 0 and read.stdout == "ok\n", read.stdout + read.stderr
        assert (tmp_path / "secret").read_text() == SECRET
        assert (tmp_path / "secret").stat().st_mode & 0o077 == 0  # umask 077: root-only
        token = session.client("ecr", endpoint_url=endpoint.url).get_authorization_token()
        expected = base64.b64decode(token["authorizationData"][0]["authorizationToken"]).decode().split(":", 1)[1]
        assert (tmp_path / "ecr").read_text() == expected
        assert metadata.credential_reads == 1 and metadata.unauthorized_reads == 0  # IMDSv2, one role read

        missing = run_boot_functions(endpoint, url, f"ssm_get /archfleet/boot-test/absent {tmp_path}/x")
        assert missing.returncode == 1
        assert "archfleet-failure: cannot read SSM parameter /archfleet/boot-test/absent" in missing.stderr
        no_role = run_boot_functions(endpoint, "http://127.0.0.1:9",
                                     f"ssm_get /archfleet/boot-test/secret {tmp_path}/x")
        assert no_role.returncode == 1 and "archfleet-failure: no IMDSv2 token" in no_role.stderr
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("line", "message"), [
    ("    ssm_prefix: archfleet/x\n", "fleet.yaml:14: spot_fleets.ci-arm.ssm_prefix: 'archfleet/x' is not an SSM "
                                    "parameter path"),
    ("    instance_profile: 'a b'\n", "fleet.yaml:14: spot_fleets.ci-arm.instance_profile: 'a b' is not an IAM "
                                      "instance profile name"),
    ("    user_data: maybe\n", "fleet.yaml:14: spot_fleets.ci-arm.user_data: expected true or false"),
])
def test_the_user_data_knobs_are_checked_at_load(tmp_path: Path, line: str, message: str) -> None:
    from tests.spot.test_spec import GOOD, load

    text = GOOD.replace("    role: ci-runner\n", "    role: ci-runner\n" + line)
    text = text.replace("    tags: {team: infra}\n    max_price: 0.02\n", "")
    with pytest.raises(InputError) as raised:
        load(tmp_path, text)
    assert message in str(raised.value), str(raised.value)


def test_the_user_data_knobs_default_off(tmp_path: Path) -> None:
    from tests.spot.test_spec import GOOD, load

    spec = load(tmp_path, GOOD).spot_fleets["ci-arm"]
    assert (spec.user_data, spec.instance_profile, spec.parameter_prefix) == (False, None, "/archfleet/ci-arm")


def test_a_new_instance_runs_the_services_of_its_architecture_spot_and_role_groups_in_start_order(
        tmp_path: Path) -> None:
    from archfleet.fleet.spot import SpotFleetSpec
    from archfleet.placement import services_in_groups
    from archfleet.spot.joining import instance_groups
    from tests.spot.test_spec import load

    inventory = tmp_path / "inventory.py"
    inventory.write_text('globals().update({"spot": ["h1"], "ci-runner": ["h1"], "arm64": ["h2"], '
                         '"workstation": ["h3"]})\n')
    fleet = load(tmp_path, f"""\
registry: {{lab: true}}
inventory: {inventory}
services:
  runner: {{image: "debian:12", groups: [spot], stop_order: 10}}
  proxy: {{image: "debian:12", groups: [ci-runner], stop_order: 90}}
  arm-only: {{image: "debian:12", groups: [arm64]}}
  elsewhere: {{image: "debian:12", groups: [workstation]}}
""")
    spec = SpotFleetSpec("ci", 1, ("t3.small",), {}, role="ci-runner")
    names = [s.name for s in services_in_groups(fleet.services, instance_groups(spec, "amd64"))]
    assert names == ["proxy", "runner"]  # the highest stop_order starts first
    arm = [s.name for s in services_in_groups(fleet.services, instance_groups(spec, "arm64"))]
    assert sorted(arm) == ["arm-only", "proxy", "runner"]


def test_up_deletes_the_fleets_parameters_no_release_uses_and_keeps_the_rest(endpoint: Endpoint,
                                                                             tmp_path: Path) -> None:
    """A rotated secret's old parameter (and one of a service gone) is deleted once the fleet launches with the
    new user-data; the current release's parameters and another fleet's stay; a second up deletes nothing."""
    from tests.spot.test_fleet_on_moto import write_fleet

    name = "prunes"
    prefix = "/archfleet/test-prunes"
    password = tmp_path / "registry-password"
    password.write_text("registry-secret\n")
    password.chmod(0o600)
    fleet = write_fleet(tmp_path, endpoint, name, 1, extra=f"    user_data: true\n    ssm_prefix: {prefix}\n")
    registry = f"registry: {{address: 'reg.test:5000', username: archfleet, password_file: {password}}}"
    fleet.write_text(fleet.read_text().replace("registry: {lab: true}", registry) + "services: {}\n")
    ssm = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                region_name=REGION).client("ssm", endpoint_url=endpoint.url)
    current = f"{prefix}/registry/reg.test_5000"
    stale = [f"{prefix}/arm64/services/web/{'0' * 16}/token", f"{prefix}/amd64/services/gone/{'1' * 16}/key"]
    elsewhere = "/archfleet/test-prunes-other/arm64/services/web/token"
    for parameter in [*stale, elsewhere]:
        ssm.put_parameter(Name=parameter, Type="SecureString", Value="b2xk")
    try:
        up = endpoint.archfleet("spot", "up", "-f", str(fleet), name, "--wait", "60")
        assert up.returncode == 0, up.stderr
        for parameter in stale:
            assert f"delete SecureString {parameter} (no release uses it)" in up.stderr, up.stderr
        names = [p["Name"] for p in ssm.get_parameters_by_path(Path=prefix, Recursive=True)["Parameters"]]
        assert [n for n in names if not n.startswith(f"{prefix}/releases/")] == [current, f"{prefix}/release/current"]
        assert len({n.split("/")[4] for n in names if n.startswith(f"{prefix}/releases/")}) == 1, names
        assert ssm.get_parameter(Name=elsewhere)["Parameter"]["Name"] == elsewhere
        again = endpoint.archfleet("spot", "up", "-f", str(fleet), name, "--wait", "60")
        assert again.returncode == 0 and "delete SecureString" not in again.stderr, again.stderr
        assert f"spot fleet {name}: no change" in again.stderr, again.stderr
    finally:
        down = endpoint.archfleet("spot", "down", "-f", str(fleet), name)
        assert down.returncode == 0, down.stderr
        ssm.delete_parameter(Name=elsewhere)
