"""Hostile fleet-file text reaches no shell, and secrets stay secret, on the lab.

- hostile secret keys (`../x`, `$(touch ...)`, `a;b`), a hostile service name and a secret rendered into
  `environment` are schema errors: exit 2, one line `FILE:LINE: key.path: reason`, nothing run;
- a sync that really creates containers and uploads secrets whose VALUES hold quotes, `$(...)`, backticks, newlines
  and `; rm -rf`, with an environment value and a mount path that a shell would also interpret: no marker file
  appears on any host, in the containers or on this machine, each secret is byte-exact in the container's mounted
  file, and no secret shows in any process's argv or environment (sampled all along the sync), in
  `docker inspect`, in the sync's output, or in any file other than its own root-only copy on the host;
- a secret mounted with `owner: "1000:1000"` and `mode: "0400"` is readable by uid 1000 in the container and by
  no other user;
- no plain hash of a secret names anything: the version names from before the fleet's key (sha256 of the value,
  16 hex digits, or of `digest owner mode` for an owned mount) and the value's whole sha256 are in no argv or
  environment, no output, no `docker inspect`, no file's content and no file's name, on any host or here; the
  version folders are the keyed ones (services/desired.py file_version).

The lab hosts are containers of this machine: their processes are processes of this kernel, so one sampler of
/proc here sees every host's argv (what `ps auxww` on each host shows), and each host's files are read through
/proc/PID/root of its container, with this machine's fast tools.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from archfleet.lab import lab as lab_module
from archfleet.lab.images import base_image
from archfleet.lab.state import LabHost, LabState
from tests.lab.faults import SyncResult, in_lab_host, publish_test_image, sync
from tests.lab.support import LAB_INVENTORY, HostBootstrap

pytestmark = pytest.mark.lab

ROOT_REPO = "archfleet-test/faults-secrets"
USER_REPO = "archfleet-test/faults-secrets-user"
MARKER = "/tmp/archfleet-pwned"  # every hostile value tries to create a file whose name starts with this
KEEP = "/tmp/archfleet-keep"  # and to remove this directory
HOSTILE_MOUNT = ("/run/secrets/a'b\"c$(touch${IFS}" + MARKER + "-mount)d`touch${IFS}" + MARKER
                 + "-mount2`;e&&f|g>h")
HOSTILE_ENV = (f"env-token $(touch {MARKER}-env) `touch {MARKER}-env2` '\"; touch {MARKER}-env3; echo \"' "
               "$HOME ${HOME} \\ ; rm -rf " + KEEP)
# A `logging:` option (json-file's tag: one line of any text) reaches `docker create --log-opt` as it was written
HOSTILE_LOG_TAG = f"log-tag $(touch {MARKER}-log) `touch {MARKER}-log2` '\"; touch {MARKER}-log3; echo \"' $HOME"


def hostile_values() -> dict[str, str]:
    """Secret key -> value; each value starts with a token of its own (to look for it anywhere)."""
    def token() -> str:
        return f"sekrit-{uuid.uuid4().hex}"

    return {
        "quotes": f"{token()} it's a \"quoted\" value with a \\ backslash and '' \"\"",
        "substitution": f"{token()} $(touch {MARKER}-subst) ${{HOME}} $HOME $((1+1))",
        "backticks": f"{token()} `touch {MARKER}-tick` end",
        "newlines": f"{token()} first line\nsecond; rm -rf {KEEP}\n'; touch {MARKER}-nl; '\nlast line",
        "semicolon": f"{token()}; rm -rf {KEEP}; touch {MARKER}-semi && echo done",
    }


@dataclass
class SecretRig:
    lab: LabState
    directory: Path
    values: dict[str, str] = field(default_factory=hostile_values)
    owned_value: str = field(default_factory=lambda: f"sekrit-{uuid.uuid4().hex}")

    @property
    def hosts(self) -> list[LabHost]:
        return self.lab.hosts_of("amd64") + self.lab.hosts_of("arm64")

    @property
    def tokens(self) -> list[str]:
        return [value.split()[0].rstrip(";") for value in self.values.values()] + [self.owned_value]

    @property
    def plain_hashes(self) -> list[str]:
        """What named (or would name) each secret's version without the fleet's key: sha256(value)[:16] (and of
        `digest 1000:1000 0400` for the owned one), and each value's whole sha256."""
        digests = [hashlib.sha256(value.encode()).hexdigest() for value in [*self.values.values(), self.owned_value]]
        owned = hashlib.sha256(f"{digests[-1]} 1000:1000 0400".encode()).hexdigest()
        return [*digests, *(d[:16] for d in digests), owned[:16]]

    def fleet(self) -> dict[str, object]:
        registry = self.lab.registry.address
        secrets: dict[str, object] = {name: {"file": name} for name in self.values}
        secrets["substitution"] = {"file": "substitution", "mount": HOSTILE_MOUNT}
        return {
            "registry": {"lab": True},
            "inventory": LAB_INVENTORY,
            "services": {
                "hostile": {
                    "image": f"{registry}/{ROOT_REPO}:live", "groups": ["amd64", "arm64"],
                    "command": ["sleep", "infinity"], "environment": {"HOSTILE_ENV": HOSTILE_ENV},
                    "logging": {"options": {"tag": HOSTILE_LOG_TAG}},
                    "secrets": secrets,
                },
                "owned": {
                    "image": f"{registry}/{USER_REPO}:live", "groups": ["amd64", "arm64"],
                    "command": ["sleep", "infinity"],
                    "secrets": {"owned_token": {"file": "owned", "owner": "1000:1000", "mode": "0400"}},
                },
            },
        }

    def write(self, fleet: dict[str, object], name: str = "fleet.yaml") -> Path:
        path = self.directory / name
        path.write_text(yaml.safe_dump(fleet, sort_keys=False, width=1000))
        return path


def write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)


def remove_services(rig: SecretRig) -> None:
    """This module's containers and files off the hosts (nothing else: a `sync --prune` would take what other
    modules left too)."""
    for host in rig.hosts:
        in_lab_host(host, "sh", "-c", "docker rm -f archfleet-hostile archfleet-owned >/dev/null 2>&1; "
                                      "rm -rf /etc/archfleet/services/hostile /etc/archfleet/services/owned")


@pytest.fixture(scope="module")
def rig(lab: LabState, tmp_path_factory: pytest.TempPathFactory, host_bootstrap: HostBootstrap) -> Iterator[SecretRig]:
    host_bootstrap.ensure()
    rig = SecretRig(lab_module.up(), tmp_path_factory.mktemp("secrets"))
    bases = {arch: base_image(arch) for arch in ("amd64", "arm64")}
    publish_test_image(rig.lab, ROOT_REPO, "root", "live", bases)
    publish_test_image(rig.lab, USER_REPO, "user", "live", bases, user="1000:1000")
    for name, value in rig.values.items():
        write_secret(rig.directory / name, value)
    write_secret(rig.directory / "owned", rig.owned_value)
    remove_services(rig)
    yield rig
    remove_services(rig)


# ------------------------------------------------------------------------------------------------------------
# Schema errors: nothing runs


def schema_error(rig: SecretRig, fleet: dict[str, object]) -> str:
    path = rig.write(fleet, "hostile.yaml")
    for args in ((), ("--dry",)):
        result = sync(path, *args)
        assert result.returncode == 2, result
        assert result.stdout == "" and "Traceback" not in result.stderr, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and re.search(rf"{re.escape(str(path))}:\d+: services\.", lines[0]), result
    assert not Path(MARKER).exists() and not list(Path("/tmp").glob("pwned*"))
    return lines[0]


@pytest.mark.parametrize("key", ["../x", "$(touch /tmp/pwned)", "a;b", "x/../../etc/passwd", "`touch /tmp/pwned`"])
def test_a_hostile_secret_key_is_a_schema_error(rig: SecretRig, key: str) -> None:
    fleet = rig.fleet()
    service = fleet["services"]["hostile"]  # type: ignore[index]
    service["secrets"] = {key: {"file": "quotes"}}
    line = schema_error(rig, fleet)
    assert "secrets" in line, line


def test_a_hostile_service_name_is_a_schema_error(rig: SecretRig) -> None:
    fleet = rig.fleet()
    services = fleet["services"]
    assert isinstance(services, dict)
    services[f"x;touch {MARKER}-name"] = services.pop("owned")
    schema_error(rig, fleet)


@pytest.mark.parametrize("where", ["environment", "command", "entrypoint"])
def test_a_secret_rendered_into_argv_or_environment_is_a_schema_error_that_says_what_to_do(
        rig: SecretRig, where: str) -> None:
    fleet = rig.fleet()
    service = fleet["services"]["hostile"]  # type: ignore[index]
    rendered = "{{ secrets.quotes }}"
    service[where] = {"LEAK": rendered} if where == "environment" else ["sh", "-c", f"echo {rendered}"]
    line = schema_error(rig, fleet)
    assert "_FILE" in line and "mount" in line, line


# ------------------------------------------------------------------------------------------------------------
# A real sync with hostile values


class ArgvSampler:
    """Reads every process's argv and environment on this machine (every lab host's processes among them) again
    and again, keeping what holds one of ``tokens``."""

    def __init__(self, tokens: list[str]):
        self.tokens = [t.encode() for t in tokens]
        self.found: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ArgvSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        own = str(os.getpid())
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == own:
                    continue
                for what in ("cmdline", "environ"):
                    try:
                        data = Path(f"/proc/{pid}/{what}").read_bytes()
                    except OSError:
                        continue
                    if any(t in data for t in self.tokens):
                        shown = data.replace(b"\0", b" ")[:300]
                        self.found.append(f"pid {pid} {what}: {shown!r}")
            self.samples += 1
            self._stop.wait(0.02)


def host_root(host: LabHost) -> Path:
    """The host's filesystem as its own processes see it."""
    pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", host.container], capture_output=True,
                         text=True, check=True).stdout.strip()
    return Path(f"/proc/{pid}/root")


def files_holding(tokens: list[str], roots: list[Path]) -> list[Path]:
    argv = ["grep", "-rlF", "--no-messages", "-D", "skip", *(a for t in tokens for a in ("-e", t)),
            *(str(r) for r in roots if r.exists())]
    found = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600).stdout
    return [Path(line) for line in found.splitlines() if line]


def readable_by_others(path: Path, root: Path) -> bool:
    """Can a user other than the owner (and not in its group) read ``path``: o+r on it, o+x on every directory
    from ``root`` down."""
    if not os.stat(path).st_mode & 0o004:
        return False
    parent = path.parent
    while parent != root and root in parent.parents:
        if not os.stat(parent).st_mode & 0o001:
            return False
        parent = parent.parent
    return True


def container_bytes(host: LabHost, container: str, path: str,
                    user: str | None = None) -> subprocess.CompletedProcess[bytes]:
    """``cat PATH`` in the container, each word its own argv element from here to the container (no shell)."""
    as_user = ["-u", user] if user else []
    return subprocess.run(["docker", "exec", host.container, "docker", "exec", *as_user, container, "cat", path],
                          capture_output=True, check=False, timeout=60)


@pytest.fixture(scope="module")
def hostile_sync(rig: SecretRig) -> SyncResult:
    for host in rig.hosts:
        assert in_lab_host(host, "sh", "-c", f"rm -rf {MARKER}*; mkdir -p {KEEP}").returncode == 0
    subprocess.run(["sh", "-c", f"rm -rf {MARKER}*; mkdir -p {KEEP}"], check=True)
    path = rig.write(rig.fleet())
    with ArgvSampler(rig.tokens + rig.plain_hashes) as sampler:
        result = sync(path)
    assert result.returncode == 0, result
    for host in rig.hosts:
        assert result.statuses[host.name] == "updated: hostile (create), owned (create)", result
    assert sampler.samples > 20, f"only {sampler.samples} samples of the processes during the sync"
    assert sampler.found == [], "a secret in a process's argv or environment:\n" + "\n".join(sampler.found)
    return result


def test_no_hostile_value_reaches_a_shell(rig: SecretRig, hostile_sync: SyncResult) -> None:
    for host in rig.hosts:
        check = in_lab_host(host, "sh", "-c", f"ls -d {MARKER}* 2>/dev/null; test -d {KEEP} || echo {KEEP} gone")
        assert check.stdout == "", (host.name, check.stdout)
        for container in ("archfleet-hostile", "archfleet-owned"):
            inside = in_lab_host(host, "docker", "exec", container, "sh", "-c", f"ls -d {MARKER}* 2>/dev/null; true")
            assert inside.returncode == 0 and inside.stdout == "", (host.name, container, inside)
    assert not list(Path("/tmp").glob(Path(MARKER).name + "*")) and Path(KEEP).is_dir()


def test_each_secret_is_byte_exact_in_its_mounted_file(rig: SecretRig, hostile_sync: SyncResult) -> None:
    mounts = {name: f"/run/secrets/{name}" for name in rig.values} | {"substitution": HOSTILE_MOUNT}
    for host in rig.hosts:
        for name, value in rig.values.items():
            read = container_bytes(host, "archfleet-hostile", mounts[name], user="0")
            assert read.returncode == 0, (host.name, name, read.stderr)
            assert read.stdout == value.encode(), (host.name, name, read.stdout)


def test_an_environment_value_arrives_literally(rig: SecretRig, hostile_sync: SyncResult) -> None:
    for host in rig.hosts:
        inspected = json.loads(in_lab_host(host, "docker", "inspect", "archfleet-hostile").stdout)[0]
        assert f"HOSTILE_ENV={HOSTILE_ENV}" in inspected["Config"]["Env"], host.name


def test_a_logging_option_arrives_literally(rig: SecretRig, hostile_sync: SyncResult) -> None:
    for host in rig.hosts:
        inspected = json.loads(in_lab_host(host, "docker", "inspect", "archfleet-hostile").stdout)[0]
        assert inspected["HostConfig"]["LogConfig"] == {
            "Type": "json-file", "Config": {"tag": HOSTILE_LOG_TAG, "max-size": "10m", "max-file": "3"}}, host.name


def test_secrets_appear_in_no_output_inspect_or_readable_file(rig: SecretRig, hostile_sync: SyncResult) -> None:
    for token in rig.tokens:
        assert token not in hostile_sync.stdout + hostile_sync.stderr
    for host in rig.hosts:
        inspected = in_lab_host(host, "docker", "inspect", "archfleet-hostile", "archfleet-owned")
        assert inspected.returncode == 0 and not any(t in inspected.stdout for t in rig.tokens), host.name
        root = host_root(host)
        holders = files_holding(rig.tokens, [root / d for d in ("etc", "tmp", "var", "root", "run", "home", "opt",
                                                                 "srv", "usr/local")])
        expected = root / "etc" / "archfleet" / "services"
        strays = [str(p) for p in holders if expected not in p.parents]
        assert strays == [], (host.name, strays)
        assert len(holders) == len(rig.tokens), (host.name, holders)  # each secret once, in its own file
        assert [str(p) for p in holders if readable_by_others(p, root)] == [], host.name
    local = files_holding(rig.tokens, [Path(p) for p in ("/tmp", "/var/tmp", "/root/.config", "/root/.ssh",
                                                         "/root/.docker", "/var/log", "/run", "/var/lib/archfleet",
                                                         "/etc")])
    strays = [str(p) for p in local if rig.directory not in p.parents and not str(p).startswith("/proc")]
    assert strays == [], strays


def test_no_plain_hash_of_a_secret_names_a_version_or_shows_anywhere(rig: SecretRig,
                                                                       hostile_sync: SyncResult) -> None:
    """The sampler of the sync (hostile_sync) looked for them in every argv and environment too."""
    hashes = rig.plain_hashes
    assert not [h for h in hashes if h in hostile_sync.stdout + hostile_sync.stderr]
    for host in rig.hosts:
        inspected = in_lab_host(host, "docker", "inspect", "archfleet-hostile", "archfleet-owned")
        assert inspected.returncode == 0 and not [h for h in hashes if h in inspected.stdout], host.name
        mounts = [m["Source"] for c in json.loads(inspected.stdout) for m in c["Mounts"]
                  if m["Source"].startswith("/etc/archfleet/services/")]
        versions = {Path(m).parent.name for m in mounts}
        assert len(mounts) == len(rig.tokens) and all(re.fullmatch(r"[0-9a-f]{16}", v) for v in versions), mounts
        logs = in_lab_host(host, "sh", "-c", "docker logs archfleet-hostile 2>&1; docker logs archfleet-owned 2>&1")
        assert not [h for h in hashes if h in logs.stdout], host.name
        root = host_root(host)
        names = subprocess.run(["find", *(str(root / d) for d in ("etc", "tmp", "var", "root", "run", "home",
                                                                  "opt", "srv", "usr/local"))],
                               capture_output=True, text=True, check=False, timeout=600).stdout
        assert not [line for line in names.splitlines() if any(h in line for h in hashes)], host.name
        assert all(f"/etc/archfleet/services/{Path(m).parent.parent.name}/{Path(m).parent.name}" in names
                   for m in mounts), host.name  # the keyed folders are there, seen by the same find
        holders = files_holding(hashes, [root / d for d in ("etc", "tmp", "var", "root", "run", "home", "opt",
                                                             "srv", "usr/local")])
        assert holders == [], (host.name, holders)
    local = files_holding(hashes, [Path(p) for p in ("/tmp", "/var/tmp", "/root/.config", "/root/.cache",
                                                     "/root/.ssh", "/root/.docker", "/var/log", "/run",
                                                     "/var/lib/archfleet", "/etc")])
    assert [str(p) for p in local if not str(p).startswith("/proc")] == []


def test_an_owned_secret_is_readable_by_its_uid_only(rig: SecretRig, hostile_sync: SyncResult) -> None:
    mount = "/run/secrets/owned_token"
    for host in rig.hosts:
        as_image_user = container_bytes(host, "archfleet-owned", mount)  # the image's USER 1000:1000
        assert as_image_user.returncode == 0 and as_image_user.stdout == rig.owned_value.encode(), (
            host.name, as_image_user.stderr)
        other = container_bytes(host, "archfleet-owned", mount, user="1001:1001")
        assert other.returncode != 0 and b"Permission denied" in other.stderr, (host.name, other)
        stat = in_lab_host(host, "docker", "exec", "archfleet-owned", "stat", "-c", "%u:%g %a", mount)
        assert stat.stdout.strip() == "1000:1000 400", (host.name, stat)


def test_a_second_sync_changes_nothing(rig: SecretRig, hostile_sync: SyncResult) -> None:
    again = sync(rig.directory / "fleet.yaml")
    assert again.returncode == 0 and set(again.statuses.values()) == {"no changes"}, again
