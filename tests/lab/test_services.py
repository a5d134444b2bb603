"""End to end on the lab: services from multi-arch tags, each host running its own platform's image.

One module-scoped fleet (v2ray from the project's images, and `mover`, a tag these tests move between builds)
goes through a first sync, a no-op sync, a moved tag, a failed health check with rollback, a config change,
a dry run, a pre-flight failure, and the proof.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from archfleet.lab.images import base_image
from archfleet.lab.state import LabState
from archfleet.lab.v2ray_client import fetch_through_proxy
from tests.lab.support import LAB_INVENTORY, PROJECT, HostBootstrap, PyinfraResult, archfleet, fleet_header, on_host

pytestmark = pytest.mark.lab

MOVER = "archfleet-test/mover"
V2RAY_TEMPLATE = """{
  "log": {"loglevel": "{{ loglevel }}"},
  "inbounds": [{"listen": "0.0.0.0", "port": {{ port }}, "protocol": "vmess",
                "settings": {"clients": [{"id": "{{ secrets.vmess_id }}", "alterId": 0}]}}],
  "outbounds": [{"protocol": "freedom"}]
}
"""
SERVICES = """\
services:
  v2ray:
    image: v2ray
    groups: [amd64, arm64]
    ports: [10086]
    files: [{{template: v2ray.json.j2, mount: /etc/v2ray/config.json}}]
    vars: {{port: 10086, loglevel: {loglevel}}}
    secrets: {{vmess_id: {{file: vmess-id, generate: uuid}}}}
    healthcheck: {{command: "bash -c 'echo > /dev/tcp/127.0.0.1/10086'", interval: 2, retries: 20}}
  mover:
    image: {registry}/{mover}:live
    groups: [amd64, arm64]
    command: [sleep, infinity]
    secrets: {{token: {{file: mover-token, generate: token}}}}
    # Healthy everywhere, except the build called "bad" on arm64: a failure on one host only.
    healthcheck:
      command: "[ \\"$MOVER_BUILD\\" != bad ] || [ \\"$(uname -m)\\" != aarch64 ]"
      interval: 1
      retries: 3
"""


class Fleet:
    def __init__(self, directory: Path, lab: LabState):
        self.directory = directory
        self.lab = lab
        (directory / "v2ray.json.j2").write_text(V2RAY_TEMPLATE)
        self.path = directory / "fleet.yaml"
        self.write(loglevel="warning")

    def write(self, loglevel: str, mover: str = "live") -> None:
        services = SERVICES.format(loglevel=loglevel, registry=self.lab.registry.address, mover=MOVER)
        self.path.write_text(fleet_header("v2ray") + services.replace(f"{MOVER}:live", f"{MOVER}:{mover}"))

    def sync(self, *args: str) -> subprocess.CompletedProcess[str]:
        return archfleet("sync", "-f", str(self.path), *args)

    def secret(self, name: str) -> str:
        return (self.directory / name).read_text().strip()


def publish_mover(lab: LabState, build: str, tag: str = "live", arches: tuple[str, ...] = ("amd64", "arm64"),
                  more: str = "") -> None:
    """Build the `mover` image for each arch from the lab's base (no RUN step: no emulation needed; ``more``:
    further Dockerfile lines) and move the multi-arch tag to it."""
    ref = f"{lab.registry.address}/{MOVER}:{tag}"
    for arch in arches:
        dockerfile = f"FROM {base_image(arch)}\nENV MOVER_BUILD={build}\nLABEL archfleet.test.build={build}\n{more}"
        subprocess.run(["docker", "build", "-q", "--platform", f"linux/{arch}", "-t", f"{ref}-{arch}", "-"],
                       input=dockerfile, text=True, check=True, capture_output=True)
        subprocess.run(["docker", "push", "-q", f"{ref}-{arch}"], check=True, capture_output=True)
    subprocess.run(["docker", "manifest", "rm", ref], capture_output=True, check=False)
    subprocess.run(["docker", "manifest", "create", ref, *(f"{ref}-{a}" for a in arches)], check=True,
                   capture_output=True)
    subprocess.run(["docker", "manifest", "push", "--purge", ref], check=True, capture_output=True)


def containers(lab: LabState) -> dict[tuple[str, str], dict[str, str]]:
    """(host, container) -> id, digest label and status, for the archfleet containers on every fleet host."""
    found = {}
    for host in lab.hosts_of("amd64") + lab.hosts_of("arm64"):
        out = on_host(host, "docker ps -a --filter label=archfleet.service --format "
                            "'{{.Names}} {{.ID}} {{.Label \"archfleet.digest\"}} {{.State}}'").stdout
        for line in out.split("\n"):
            if line.strip():
                name, cid, digest, status = line.split()
                found[(host.name, name)] = {"id": cid, "digest": digest, "status": status}
    return found


def changed_lines(output: str) -> dict[str, str]:
    return {line.split("\t")[1]: line.split("\t")[2] for line in output.splitlines() if line.startswith("sync\t")}


@pytest.fixture(scope="module")
def fleet(lab: LabState, tmp_path_factory: pytest.TempPathFactory, host_bootstrap: HostBootstrap) -> Iterator[Fleet]:
    host_bootstrap.ensure()
    publish_mover(lab, "1")
    fleet = Fleet(tmp_path_factory.mktemp("fleet"), lab)
    archfleet("images", "build", "-f", str(fleet.path), check=True)
    yield fleet
    # Leave the lab's hosts without this module's services.
    empty = tmp_path_factory.mktemp("empty") / "fleet.yaml"
    empty.write_text(f"registry: {{lab: true}}\ninventory: {LAB_INVENTORY}\nservices: {{}}\n")
    archfleet("sync", "--prune", "-f", str(empty))


def test_first_sync_runs_every_service_and_the_second_changes_nothing(fleet: Fleet, lab: LabState) -> None:
    first = fleet.sync()
    assert first.returncode == 0, first.stderr[-3000:]
    second = fleet.sync()
    assert second.returncode == 0, second.stderr[-3000:]
    assert all(status == "no changes" for status in changed_lines(second.stdout).values()), second.stdout
    running = containers(lab)
    for host in ("amd64-1", "arm64-1"):
        for service in ("archfleet-v2ray", "archfleet-mover"):
            assert running[(host, service)]["status"] == "running", (host, service)
    proof = archfleet("verify", "-f", str(fleet.path))
    assert proof.returncode == 0, proof.stdout + proof.stderr
    assert "arm64-1  linux/arm64  mover    running" in proof.stdout
    assert "aarch64" in proof.stdout and "x86_64" in proof.stdout


def test_a_no_op_sync_says_so_in_json_and_still_finds_drift(fleet: Fleet, lab: LabState) -> None:
    """Every sync reads every host and tag afresh: `--json` of the settled fleet says, host by host, its platform
    (that of the lab host's own arch), `unchanged` and both services with nothing to do; after a container is
    stopped behind archfleet's back, the JSON of `--dry` plans its start on that host alone, and the next sync
    starts it (no container is replaced)."""
    settled = fleet.sync("--json")
    assert settled.returncode == 0, settled.stderr[-3000:]
    document = json.loads(settled.stdout)
    assert document["ok"] is True and document["dry"] is False and document["batches"] == [], document
    fleet_hosts = {host.name: arch for arch in ("amd64", "arm64") for host in lab.hosts_of(arch)}
    assert set(fleet_hosts) <= set(document["hosts"]), document["hosts"].keys()
    for name, entry in document["hosts"].items():  # the lab may hold other hosts (a workstation): no services
        assert entry["status"] == "unchanged" and entry["reason"] == "" and entry["orphans"] == [], (name, entry)
        if name not in fleet_hosts:
            assert entry["services"] == {}, (name, entry)
            continue
        assert entry["platform"] == f"linux/{fleet_hosts[name]}", (name, entry)
        assert {service: (result["action"], result["result"]) for service, result in entry["services"].items()} \
            == {"v2ray": ("none", "unchanged"), "mover": ("none", "unchanged")}, (name, entry)
    before = containers(lab)
    arm64 = lab.hosts_of("arm64")[0]
    on_host(arm64, "docker stop -t 1 archfleet-v2ray >/dev/null")
    planned = fleet.sync("--json", "--dry")
    assert planned.returncode == 0, planned.stderr[-3000:]
    plan = json.loads(planned.stdout)
    assert plan["dry"] is True and plan["ok"] is True, plan
    drifted = plan["hosts"].pop(arm64.name)
    assert drifted["status"] == "would_change" and drifted["platform"] == "linux/arm64", drifted
    assert (drifted["services"]["v2ray"]["action"], drifted["services"]["v2ray"]["result"]) == ("start", "planned")
    assert drifted["services"]["mover"]["action"] == "none", drifted
    assert {entry["status"] for entry in plan["hosts"].values()} == {"unchanged"}, plan["hosts"]
    assert [(batch["service"], batch["hosts"]) for batch in plan["batches"]] == [("v2ray", [arm64.name])], plan
    assert containers(lab) == {**before, (arm64.name, "archfleet-v2ray"): {
        **before[(arm64.name, "archfleet-v2ray")], "status": "exited"}}, "--dry changed nothing"
    started = fleet.sync()
    assert started.returncode == 0, started.stderr[-3000:]
    lines = changed_lines(started.stdout)
    assert lines.pop(arm64.name) == "updated: v2ray (start)" and lines and set(lines.values()) == {"no changes"}, \
        started.stdout
    after = containers(lab)
    assert {key: value["id"] for key, value in after.items()} == {key: value["id"] for key, value in before.items()}
    assert after[(arm64.name, "archfleet-v2ray")]["status"] == "running"
    again = fleet.sync()
    assert again.returncode == 0 and set(changed_lines(again.stdout).values()) == {"no changes"}, again.stdout


def test_each_engine_reader_gives_the_same_answers(fleet: Fleet, lab: LabState) -> None:
    """The services read asks the engine with nc, else curl, else the docker CLI (facts/service_reads.py): on each
    lab host (which the bootstrap gave nc and curl), the three give one ServicesState. Each reader runs the very
    command with a PATH that holds it alone of the three (so a reader that broke cannot hide behind the next one).
    A step script's `container_state` (tasks/service_commands.py, the docker CLI's `--format`) reads a running
    container and a missing one."""
    from archfleet.facts.service_reads import SERVICES_STATE_COMMAND, parse_services_state
    from archfleet.tasks.service_commands import PRELUDE

    hide = ("d=$(mktemp -d); for tool in $(ls /usr/bin); do case $tool in {hidden}) ;; *) "
            "ln -s /usr/bin/$tool $d/$tool;; esac; done; PATH=$d:/usr/sbin:/sbin /bin/sh -c {command}; rm -rf $d")
    for host in (lab.hosts_of("amd64")[0], lab.hosts_of("arm64")[0]):
        states = {}
        for reader, hidden in (("nc", "curl|docker"), ("curl", "nc|nc.openbsd|docker"),
                               ("docker", "nc|nc.openbsd|curl")):
            result = on_host(host, hide.format(hidden=hidden, command=shlex.quote(SERVICES_STATE_COMMAND)))
            assert result.returncode == 0, result.stderr
            state = parse_services_state(result.stdout.splitlines())
            assert state["engine_running"] and "archfleet-v2ray" in state["containers"], (reader, result.stdout)
            states[reader] = {**state, "login_ages": sorted(state["login_ages"])}
        assert states["nc"] == states["curl"] == states["docker"], (host.name, states)
        looks = PRELUDE + ("container_state archfleet-v2ray; container_state archfleet-nothing-here; "
                           "exists archfleet-v2ray && echo there; exists archfleet-nothing-here || echo absent")
        looked = on_host(host, looks)
        assert looked.stdout == "running healthy 0 0\nmissing missing 0 0\nthere\nabsent\n", looked


def test_the_plain_pyinfra_deploy_runs_the_same_plan_and_finds_nothing_to_do(fleet: Fleet) -> None:
    """`pyinfra INVENTORY deploys/services.py` executes the same per-host plans as `archfleet sync`."""
    result = subprocess.run(
        [str(PROJECT / ".venv/bin/pyinfra"), "-y", LAB_INVENTORY, "deploys/services.py", "--limit", "amd64",
         "--limit", "arm64"], cwd=PROJECT, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "ARCHFLEET_FLEET": str(fleet.path)},
    )
    output = PyinfraResult(result.returncode, result.stdout + result.stderr)
    assert result.returncode == 0, output.output[-3000:]
    assert output.grand_total() == {"operations": 2, "changed": 0, "errors": 0, "unchanged": 2}, output.output


def test_v2ray_on_each_host_proxies_a_local_client(fleet: Fleet, lab: LabState, tmp_path: Path) -> None:
    from archfleet.lab.system import ensure_packages

    ensure_packages(("v2ray", "curl"))
    for host in lab.hosts_of("amd64") + lab.hosts_of("arm64"):
        probe = fetch_through_proxy(host.address, 10086, fleet.secret("vmess-id"), lab.gateway, tmp_path)
        assert probe.body == "reached through the proxy\n", host.name
        assert probe.seen_from == [host.address], "the page must be fetched by the host's proxy"
        assert probe.ok


def test_moving_a_tag_recreates_exactly_its_containers_with_the_new_digest(fleet: Fleet, lab: LabState) -> None:
    before = containers(lab)
    publish_mover(lab, "2")
    result = fleet.sync()
    assert result.returncode == 0, result.stderr[-3000:]
    after = containers(lab)
    for host in ("amd64-1", "arm64-1"):
        assert after[(host, "archfleet-v2ray")]["id"] == before[(host, "archfleet-v2ray")]["id"], "v2ray untouched"
        assert after[(host, "archfleet-mover")]["id"] != before[(host, "archfleet-mover")]["id"]
        assert after[(host, "archfleet-mover")]["digest"] != before[(host, "archfleet-mover")]["digest"]
        assert changed_lines(result.stdout)[host] == "updated: mover (recreate)", result.stdout
    digests = {after[(h, "archfleet-mover")]["digest"] for h in ("amd64-1", "arm64-1")}
    assert len(digests) == 2, "each platform runs its own image"
    assert "mover: recreate (image digest" in result.stderr


def test_a_failed_health_check_puts_the_previous_container_back(fleet: Fleet, lab: LabState) -> None:
    """The canary (amd64-1) is healthy, the next batch (arm64-1) is not: the rollout stops, arm64-1 gets its
    previous container back and amd64-1, moved in this sync, is rolled back to its previous container too."""
    before = containers(lab)
    publish_mover(lab, "bad")
    result = fleet.sync()
    assert result.returncode == 1
    lines = changed_lines(result.stdout)
    assert lines["arm64-1"] == "FAILED: mover: health check failed", result.stdout
    assert lines["amd64-1"] == "rolled back: mover (the rollout stopped at arm64-1)", result.stdout
    assert "put the previous archfleet-mover back" in result.stderr
    after = containers(lab)
    for host in ("amd64-1", "arm64-1"):
        assert after[(host, "archfleet-mover")]["id"] == before[(host, "archfleet-mover")]["id"], host
        assert after[(host, "archfleet-mover")]["status"] == "running"
        assert (host, "archfleet-mover-previous") not in after
    publish_mover(lab, "3")
    assert fleet.sync().returncode == 0


def test_a_rollout_runs_the_health_check_itself_instead_of_waiting_for_dockers_first(
        fleet: Fleet, lab: LabState, tmp_path: Path) -> None:
    """Docker 20.10 runs a container's first health check one whole interval after its start. A service checking
    every hour still rolls out at once: the wait runs the declared check itself, and Docker has not run one yet
    (its status is `starting`, its log empty). A check that fails is never taken for a pass: the wait runs out
    (the fleet's `timeouts: health`) and the previous container runs again, by id. A check that hangs does not
    stretch the wait: each own check gets what is left of the 8 s (at most its 3 s timeout), so at most 3 of them
    run (the half-second polls alone would have started 8, one a second, whatever each took). The wait runs the
    command with /bin/sh -c as Docker does: even for an image whose SHELL is `bash -o pipefail` (where `false | true`
    fails), Docker runs a `--health-cmd` with /bin/sh -c (the container's config has no Shell: a create does not take
    the image's), and its own first check agrees with the rollout's."""
    image = f"{lab.registry.address}/{MOVER}:live"
    patient = tmp_path / "fleet.yaml"
    checks_folder = "/tmp/archfleet-patient-checks"  # on the host: one line per check the hanging release ran

    def write(check: str, more: str = "", image: str = image, interval: int = 3600) -> None:
        patient.write_text(fleet_header() + "timeouts: {health: 8}\nservices:\n  patient:\n"
                           f"    image: {image}\n    hosts: [amd64-1]\n    command: [sleep, infinity]\n"
                           f"    healthcheck: {{command: '{check}', interval: {interval}, retries: 1, timeout: 3}}\n"
                           f"{more}")

    host = lab.hosts_of("amd64")[0]
    health = "docker inspect --format '{{.Id}} {{.State.Health.Status}} {{len .State.Health.Log}}' archfleet-patient"
    try:
        write("test -d /proc/1")
        first = archfleet("sync", "-f", str(patient))
        assert first.returncode == 0, first.stderr[-3000:]
        assert changed_lines(first.stdout)["amd64-1"].startswith("updated: patient (create)"), first.stdout
        started_id, status, checks_by_docker = on_host(host, health).stdout.split()
        assert (status, checks_by_docker) == ("starting", "0"), "the rollout's own check proved it healthy"

        write("test -d /no/such/directory")
        failed = archfleet("sync", "-f", str(patient))
        assert failed.returncode == 1
        assert changed_lines(failed.stdout)["amd64-1"].startswith("FAILED: patient: not healthy within 8 s"), \
            failed.stdout
        assert on_host(host, health).stdout.split()[0] == started_id, "the previous container runs again"

        on_host(host, f"rm -rf {checks_folder}")
        write("echo >> /checks/count; sleep 60", f"    volumes: ['{checks_folder}:/checks']\n")
        hung = archfleet("sync", "-f", str(patient))
        assert hung.returncode == 1
        assert changed_lines(hung.stdout)["amd64-1"].startswith("FAILED: patient: not healthy within 8 s"), \
            hung.stdout
        checks_run = len(on_host(host, f"cat {checks_folder}/count").stdout.splitlines())
        assert 1 <= checks_run <= 3, f"{checks_run} own checks ran in an 8 s wait, each hanging for its 3 s"
        assert on_host(host, health).stdout.split()[0] == started_id, "the previous container runs again"

        publish_mover(lab, "pipefail", tag="pipefail", arches=("amd64",),
                      more='SHELL ["/bin/bash", "-o", "pipefail", "-c"]\n')
        write("false | true", image=f"{lab.registry.address}/{MOVER}:pipefail", interval=1)
        shelled = archfleet("sync", "-f", str(patient))
        assert shelled.returncode == 0, shelled.stdout
        assert changed_lines(shelled.stdout)["amd64-1"].startswith("updated: patient (recreate)"), shelled.stdout
        dockers_first = "until [ \"$(docker inspect --format '{{len .State.Health.Log}}' archfleet-patient)\" != 0 ];" \
                        " do sleep 0.2; done; docker inspect --format '{{.State.Health.Status}}' archfleet-patient"
        assert on_host(host, dockers_first, timeout=60).stdout.strip() == "healthy", "Docker's own check agrees"
    finally:
        on_host(host, f"rm -rf {checks_folder}")
        assert fleet.sync("--prune").returncode == 0  # this module's fleet again, without `patient`
    assert "archfleet-patient" not in on_host(host, "docker ps -a --format '{{.Names}}'").stdout


def test_a_config_change_recreates_v2ray_and_dry_run_only_plans(fleet: Fleet, lab: LabState) -> None:
    before = containers(lab)
    fleet.write(loglevel="error")
    dry = fleet.sync("--dry")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "v2ray: recreate (spec" in dry.stderr
    assert containers(lab) == before, "--dry changes nothing"
    assert fleet.sync().returncode == 0
    after = containers(lab)
    for host in ("amd64-1", "arm64-1"):
        assert after[(host, "archfleet-v2ray")]["id"] != before[(host, "archfleet-v2ray")]["id"]
        assert after[(host, "archfleet-mover")]["id"] == before[(host, "archfleet-mover")]["id"]
    again = fleet.sync()
    assert all(s == "no changes" for s in changed_lines(again.stdout).values()), again.stdout


def test_preflight_stops_a_tag_missing_a_platform_before_touching_any_host(fleet: Fleet, lab: LabState) -> None:
    publish_mover(lab, "4", tag="amd64-only", arches=("amd64",))
    before = containers(lab)
    fleet.write(loglevel="error", mover="amd64-only")
    try:
        result = fleet.sync()
    finally:
        fleet.write(loglevel="error")
    assert result.returncode == 1
    message = f"{lab.registry.address}/{MOVER}:amd64-only has no verified linux/arm64 image for host arm64-1"
    assert message in result.stderr and "the tag has: linux/amd64" in result.stderr
    assert containers(lab) == before, "no running container was stopped or replaced"


def test_secrets_are_root_only_files_and_appear_nowhere_else(fleet: Fleet, lab: LabState) -> None:
    outputs = fleet.sync()
    assert outputs.returncode == 0, outputs.stderr[-3000:]
    secrets = [fleet.secret("vmess-id"), fleet.secret("mover-token")]
    for text in (outputs.stdout, outputs.stderr):
        assert not any(s in text for s in secrets)
    for host in lab.hosts_of("amd64") + lab.hosts_of("arm64"):
        listing = on_host(host, "ps auxww; docker inspect archfleet-v2ray archfleet-mover; "
                                "find /etc/archfleet/services -type f -printf 'file %u %m %p\\n'").stdout
        assert not any(s in listing for s in secrets), host.name
        files = [line.split()[1:] for line in listing.splitlines() if line.startswith("file ")]
        assert files and all(owner == "root" and mode == "600" for owner, mode, _ in files), files
        mounts = json.loads(on_host(host, "docker inspect archfleet-mover").stdout)[0]["Mounts"]
        assert any(m["Destination"] == "/run/secrets/token" and not m["RW"] for m in mounts)
    assert oct(os.stat(fleet.directory / "vmess-id").st_mode & 0o777) == "0o600"
