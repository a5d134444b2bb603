"""End to end: a spot instance that joins by itself. `archfleet spot up` (user_data: true) puts the boot script into
the launch template and the secrets into SSM; a lab host freshly reset plays the instance, and the cloud-init
stand-in runs the launch template's user-data at its first boot. Then `archfleet verify` proves its services, and
`archfleet sync` and the host bootstrap find nothing to change. The fleet's role runs the GitHub Actions runner
(against the stand-in GitHub API) and two plain services. Last, the interruption: a metadata notice, the runner
deregisters (the stand-in's registry no longer lists it) and stops first, the other services stop in the fleet's
order, a replacement instance boots from the same user-data and serves (verify passes, its runner registered
afresh), and `spot status` lists it; each step is timed and printed as one table.

Stand-ins (tests/standins/cloud_init.py): cloud-init's first boot, the metadata service (IMDSv2 with the instance
role's credentials), and a relay from the lab gateway to the EC2/SSM test server (moto); GitHub's API and the runner
release (tests/standins/github_api.py). `lab reset` stands in for EC2 starting a fresh VM. Real: the boot script,
curl's SigV4 signing, moto's SSM SecureStrings, Docker, the lab registry, the spot watcher, the runner image and its
entrypoint (registration and removal tokens), archfleet's commands.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from archfleet.lab.hosts import ssh_argv
from archfleet.lab.state import LabHost, LabPaths, LabState, load, state_dir
from archfleet.placement import container_name
from archfleet.table import format_table
from tests.lab.ec2_lab_address_map import map_fleet_to_lab
from tests.lab.github_runner_fleet import github_standin, runner_image, runner_service
from tests.lab.support import PROJECT, PROJECT_IMAGES, archfleet, on_host, stop_times
from tests.spot.conftest import Endpoint, endpoint  # noqa: F401  (endpoint: the moto fixture)
from tests.spot.test_fleet_on_moto import X86_FILTER
from tests.standins.cloud_init import RoleMetadataStandIn, boot_fleet_instance, instance_services
from tests.standins.github_api import GitHubStandin, Runner

pytestmark = pytest.mark.lab

NAME = "joins-lab"
SPOT_HOSTS = 2  # the module plays the instances with the lab's second spot host (the first is test_spot_watcher's)
ROLE = "joiners"
GROUP = "spot"  # the services' group: the role's group exists only while the fleet has instances
RUNNER = "github-runner"  # stops first: it deregisters before anything else goes
SERVICES = {RUNNER: 10, "boot-cache": 20, "boot-store": 30}  # lower stop_order stops first
SECRET_SERVICE = "boot-cache"
RUNNER_LABELS = "archfleet,spot"
CONTAINER_COMMAND = "trap 'exit 0' TERM; sleep infinity & wait"
TOKEN = "boot-secret-0123456789abcdef"


def fleet_text(moto_endpoint: Endpoint, known_hosts: Path, secret_file: Path, standin: GitHubStandin,
               github_token: Path) -> str:
    # The runner leaves RUNNER_NAME unset (named after its container's hostname): a name rendered per host could
    # not start from user-data. Bridge networking, as on real hosts (the lab's spot hosts are x86_64).
    services = runner_service(RUNNER, GROUP, "bridge", standin, github_token, RUNNER_LABELS,
                              stop_order=SERVICES[RUNNER])
    for name, order in SERVICES.items():
        if name != RUNNER:
            services += (f"  {name}:\n    image: debian\n    groups: [{GROUP}]\n"
                         f"    command: [sh, -c, \"{CONTAINER_COMMAND}\"]\n    stop_order: {order}\n")
        if name == SECRET_SERVICE:
            services += f"    secrets:\n      token: {{file: {secret_file}, mount: /run/secrets/token}}\n"
    return f"""\
registry: {{lab: true}}
inventory: {PROJECT / "inventories" / "ec2.py"}
ssh: {{user: root, key_file: {state_dir() / "ssh" / "id_ed25519"}, known_hosts: {known_hosts}}}
images:
{PROJECT_IMAGES["debian"]}{runner_image(standin)}services:
{services}spot_fleets:
  {NAME}:
    target_capacity: 1
    instance_types: [t3.small]
    ami:
      amd64: {X86_FILTER}
    key_pair: {moto_endpoint.key_pair}
    security_groups: [{moto_endpoint.security_group}]
    subnets: [{moto_endpoint.subnets[0]}]
    role: {ROLE}
    user_data: true
    instance_profile: archfleet-joins
"""


@dataclass
class Joining:
    path: Path
    known_hosts: Path
    env: dict[str, str]
    host: LabHost
    metadata: RoleMetadataStandIn
    ec2: object
    standin: GitHubStandin
    instance_id: str = ""
    timeline: dict[str, float] = field(default_factory=dict)  # what happened when (epoch seconds)

    def archfleet(self, *args: str, timeout: float = 1800, path: Path | None = None
                  ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(PROJECT / ".venv/bin/archfleet"), *args, "-f", str(path or self.path)], cwd=PROJECT,
                              env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def refresh_known_hosts(self) -> None:
        """After a reset the host has a new key: the lab's record of it (so keys are still checked)."""
        shutil.copyfile(state_dir() / "ssh" / "known_hosts", self.known_hosts)
        self.known_hosts.chmod(0o600)

    def runner(self, timeout: float = 60) -> Runner:
        """The instance's runner in the stand-in's registry, once registered: named after its container's hostname."""
        hostname = on_host(self.host, "docker inspect -f '{{.Config.Hostname}}' " + container_name(RUNNER))
        assert hostname.returncode == 0, hostname.stderr
        name = hostname.stdout.strip()
        self.standin.wait_for(lambda: any(r.name == name for r in self.standin.registry.values()), timeout,
                              f"runner {name} of {self.instance_id} registered")
        return next(r for r in self.standin.runners() if r.name == name)


def clear_host(host: LabHost) -> None:
    names = " ".join(container_name(name) for name in SERVICES)
    on_host(host, f"docker rm -f {names} >/dev/null 2>&1; /etc/init.d/archfleet-spot-watcher stop >/dev/null 2>&1; "
                  "update-rc.d -f archfleet-spot-watcher remove >/dev/null 2>&1; "
                  "rm -rf /etc/init.d/archfleet-spot-watcher /usr/local/sbin/archfleet-spot-watcher "
                  "/etc/archfleet /var/log/archfleet-spot-watcher.log /var/lib/cloud")


@pytest.fixture(scope="module")
def joining(lab: LabState, endpoint: Endpoint,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Joining]:
    if len(lab.hosts_of("spot")) < SPOT_HOSTS:
        archfleet("lab", "up", "--spot", str(SPOT_HOSTS), check=True)
        lab = load()
    host = lab.hosts_of("spot")[SPOT_HOSTS - 1]
    folder = tmp_path_factory.mktemp("joins")
    secret = folder / "token"
    secret.write_text(TOKEN)
    secret.chmod(0o600)
    path = folder / "fleet.yaml"
    with github_standin(lab.gateway, folder) as (standin, github_token):
        path.write_text(fleet_text(endpoint, folder / "known_hosts", secret, standin, github_token))
        with instance_services(lab.gateway, endpoint.url, endpoint.env, NAME) as (metadata, env):
            fleet = Joining(path, folder / "known_hosts", env, host, metadata, endpoint.ec2, standin)
            fleet.refresh_known_hosts()
            try:
                built = fleet.archfleet("images", "build")  # the runner image only when the lab registry lacks it
                assert built.returncode == 0, built.stderr[-3000:]
                yield fleet
            finally:
                clear_host(host)
                fleet.archfleet("spot", "down", NAME)


def boot_instance(fleet: Joining) -> float:
    """A fresh lab host plays the fleet's running instance; the cloud-init stand-in runs its user-data. Seconds."""
    booted = boot_fleet_instance(fleet.ec2, NAME, fleet.host, fleet.known_hosts)
    fleet.instance_id = booted.instance_id
    fleet.timeline["reset"], fleet.timeline["booted"] = booted.fresh, booted.booted
    assert TOKEN not in booted.script and fleet.standin.pat not in booted.script
    assert TOKEN not in booted.boot.output and fleet.standin.pat not in booted.boot.output
    return booted.boot.seconds


def sync_statuses(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return {line.split("\t")[1]: line.split("\t")[2] for line in result.stdout.splitlines()
            if line.startswith("sync\t")}


def test_a_host_booted_from_the_user_data_serves_and_the_next_sync_changes_nothing(joining: Joining) -> None:
    up = joining.archfleet("spot", "up", NAME, "--wait", "60")
    assert up.returncode == 0, up.stderr[-3000:]
    seconds = boot_instance(joining)
    print(f"\nfirst boot from user-data: {seconds:.1f}s")
    assert joining.metadata.credential_reads >= 1  # the secrets came through the instance role

    proof = joining.archfleet("verify", "--json")
    assert proof.returncode == 0, proof.stdout + proof.stderr[-3000:]
    rows = json.loads(proof.stdout)["rows"]
    assert {(r["host"], r["service"]) for r in rows} == {(joining.instance_id, s) for s in SERVICES}, rows
    assert all(r["verdict"] == "ok" and r["state"] == "running" for r in rows), rows
    runner = joining.runner()
    assert runner.labels == ["self-hosted", "linux", "X64", *RUNNER_LABELS.split(",")], runner

    assert sync_statuses(joining.archfleet("sync")) == {joining.instance_id: "no changes"}
    bootstrap = joining.archfleet("hosts", "bootstrap")
    assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr[-3000:]
    assert f"bootstrap\t{joining.instance_id}\tno changes" in bootstrap.stdout, bootstrap.stdout

    # The secret: read from SSM into root-only files of its service; never in ps, the user-data file or any other
    # file, and no file that holds it is readable by anyone but root.
    ps = on_host(joining.host, "ps -eo args")
    assert ps.returncode == 0 and "sshd" in ps.stdout and TOKEN not in ps.stdout, ps.stdout
    found = files_holding(joining.host, TOKEN)
    own = f"/etc/archfleet/services/{SECRET_SERVICE}/"
    assert [f for f in found if f.path.endswith("/token") and f.path.startswith(own)], found  # the search sees it
    assert [f for f in found if not f.path.startswith(own)] == [], found  # leaked elsewhere
    assert [f for f in found if (f.mode, f.owner) != ("600", "root:root")] == [], found  # readable by others


# Where a secret could land on a host (its services' files, user-data and cloud-init's copies, logs, temporary
# files, home directories, run-time state, Docker's container records and logs); not /proc, /sys or image layers.
SEARCHED = ("/etc", "/root", "/home", "/tmp", "/var/tmp", "/var/log", "/var/lib/cloud", "/var/spool", "/var/backups",
            "/run", "/usr/local", "/opt", "/srv", "/var/lib/docker/containers")


@dataclass(frozen=True)
class HeldBy:
    path: str
    mode: str  # octal permission bits, as stat prints them
    owner: str  # USER:GROUP


def files_holding(host: LabHost, secret: str) -> list[HeldBy]:
    """Every regular file under SEARCHED that holds ``secret``, with its mode and owner. The secret reaches the
    host's grep on stdin (a pattern file): it is in no command line, here or there."""
    roots = " ".join(SEARCHED)
    script = (f"for r in {roots}; do [ -e $r ] && set -- \"$@\" $r; done; "
              "grep -rlZF -D skip -f - \"$@\" 2>/dev/null | xargs -0 -r stat -c '%a %U:%G %n'; true")
    result = subprocess.run(ssh_argv(LabPaths(state_dir()), "root", host.address, script), input=secret + "\n",
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    held = []
    for line in result.stdout.splitlines():
        mode, owner, path = line.split(" ", 2)
        held.append(HeldBy(path, mode, owner))
    return sorted(held, key=lambda h: h.path)


def watcher_saw_notice(host: LabHost) -> float:
    """When the spot watcher logged the notice (its log's UTC timestamps, milliseconds)."""
    line = on_host(host, "grep -m 1 ' notice: ' /var/log/archfleet-spot-watcher.log").stdout
    assert line, "the spot watcher logged no notice"
    return datetime.datetime.fromisoformat(line.split()[0]).timestamp()


def timeline_table(marks: list[tuple[str, float]]) -> str:
    """Each step's time since the notice (the first mark) and since the step before, in the order they happened."""
    ordered = sorted(marks, key=lambda mark: mark[1])
    start = ordered[0][1]
    rows = [(step, f"{at - start:.1f}", f"{at - ordered[max(i - 1, 0)][1]:.1f}")
            for i, (step, at) in enumerate(ordered)]
    return format_table(["step", "since notice (s)", "step (s)"], rows)


def test_an_interruption_then_a_replacement_from_the_user_data_serves(joining: Joining) -> None:
    assert joining.instance_id, "needs the first test's instance"
    standin = joining.standin
    old_runner = joining.runner()
    expected = [container_name(name) for name in sorted(SERVICES, key=SERVICES.__getitem__)]
    notice = time.time()
    joining.metadata.instance_action = {"action": "terminate", "time": (
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        standin.wait_for(lambda: old_runner.id not in standin.registry, 30, f"runner {old_runner.name} deregistered")
        while True:
            times = stop_times(joining.host, expected)
            if times and all(t is not None for t in times.values()):
                break
            assert time.time() - notice < 60, f"still running 60 s after the notice: {times}"
            time.sleep(0.5)
    finally:
        joining.metadata.instance_action = None
    stopped = {name: at for name, at in times.items() if at is not None}
    # The runner deregistered itself with a removal token, then ended on SIGTERM (not killed), before the others.
    assert any(m.kind == "remove" and m.used_by == old_runner.name for m in standin.minted), standin.minted
    assert old_runner.removed_at is not None and old_runner.removed_at < stopped[container_name(RUNNER)], stopped
    assert sorted(stopped, key=stopped.__getitem__) == expected, stopped
    code = on_host(joining.host, "docker inspect -f '{{.State.ExitCode}}' " + container_name(RUNNER)).stdout
    assert code.strip() == "143", code
    marks = [("notice posted (metadata stand-in)", notice),
             ("spot watcher saw the notice", watcher_saw_notice(joining.host)),
             ("runner deregistered (stand-in GitHub's registry)", old_runner.removed_at),
             *((f"{name} stopped (stop_order {SERVICES[name]})", stopped[container_name(name)]) for name in SERVICES)]

    # EC2 reclaims the instance; the maintain fleet launches a replacement from the same launch template.
    old = joining.instance_id
    joining.ec2.terminate_instances(InstanceIds=[old])  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    while True:
        status = joining.archfleet("spot", "status", NAME, "--json")
        assert status.returncode == 0, status.stderr
        running = [i for i in json.loads(status.stdout)["spot_fleets"][0]["instances"]
                   if i["state"] == "running" and i["id"] != old and i["fleet"]]
        if running:
            break
        assert time.monotonic() < deadline, status.stdout
        time.sleep(2)
    marks.append(("replacement instance running (EC2 test server)", time.time()))
    boot_instance(joining)
    assert joining.instance_id == running[0]["id"]
    marks += [("replacement host fresh (lab reset, for a new VM)", joining.timeline["reset"]),
              ("replacement booted from user-data (cloud-init stand-in)", joining.timeline["booted"])]
    new_runner = joining.runner()
    assert new_runner.name != old_runner.name and new_runner.registered_with != old_runner.registered_with
    assert any(m.kind == "registration" and m.token == new_runner.registered_with and m.used_by == new_runner.name
               for m in standin.minted)  # a fresh registration token, minted at its start
    assert all(r.name != old_runner.name for r in standin.runners()), standin.runners()
    proof = joining.archfleet("verify", "--json")
    assert proof.returncode == 0, proof.stdout + proof.stderr[-3000:]
    rows = json.loads(proof.stdout)["rows"]
    assert {(r["host"], r["service"]) for r in rows} == {(joining.instance_id, s) for s in SERVICES}, rows
    assert all(r["verdict"] == "ok" for r in rows), rows
    marks += [("replacement runner registered afresh (stand-in GitHub)", new_runner.registered_at),
              ("replacement serving (archfleet verify passed)", time.time())]
    status = joining.archfleet("spot", "status", NAME)
    assert status.returncode == 0 and joining.instance_id in status.stdout, status.stdout
    marks.append(("`archfleet spot status` lists the replacement", time.time()))
    print("\ninterruption timeline (seconds):\n" + timeline_table(marks))


def test_spot_up_sync_bootstraps_and_syncs_an_instance_that_came_up_bare(joining: Joining) -> None:
    """Without the boot script having run (a bare host), `spot up --sync` waits for SSH, then the host bootstrap
    and the sync bring the instance in line."""
    up = joining.archfleet("spot", "up", NAME, "--wait", "60")
    assert up.returncode == 0, up.stderr[-3000:]
    played = map_fleet_to_lab(joining.ec2, NAME, [joining.host])
    joining.instance_id = played[0].instance_id
    archfleet("lab", "reset", joining.host.name, check=True)
    joining.refresh_known_hosts()
    started = time.monotonic()
    synced = joining.archfleet("spot", "up", NAME, "--sync", "--wait", "120")
    assert synced.returncode == 0, synced.stdout + synced.stderr[-4000:]
    assert f"bootstrap\t{joining.instance_id}\tchanged" in synced.stdout, synced.stdout
    assert sync_statuses(synced)[joining.instance_id].startswith("updated"), synced.stdout
    print(f"\nspot up --sync on a bare instance: {time.monotonic() - started:.1f}s")
    proof = joining.archfleet("verify", "--json")
    assert proof.returncode == 0, proof.stdout + proof.stderr[-3000:]
    rows = json.loads(proof.stdout)["rows"]
    assert {(r["host"], r["service"]) for r in rows} == {(joining.instance_id, s) for s in SERVICES}, rows
    assert sync_statuses(joining.archfleet("sync")) == {joining.instance_id: "no changes"}


def test_a_service_that_renders_per_host_is_refused_for_user_data(joining: Joining) -> None:
    """Its spec hash would differ on every instance: the boot script could not give what a sync computes."""
    variant = joining.path.with_name("per-host.yaml")
    variant.write_text(joining.path.read_text().replace(
        "      RUNNER_LABELS: ", '      RUNNER_NAME: "{{ host.name }}"\n      RUNNER_LABELS: ', 1))
    refused = joining.archfleet("spot", "up", NAME, "--dry", path=variant)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"services.{RUNNER}: renders differently per host" in refused.stderr, refused.stderr
    assert "use `spot up --sync`" in refused.stderr
