"""The boot script a spot fleet's launch template carries, so that a new instance joins by itself, and the release
script it runs: pure builders.

Cloud-init runs a user-data that starts with ``#!`` as-is at first boot. The user-data (``boot_script``) is the
same for every release: Docker from the distro (``tasks/distros.py``: chosen at boot from ``/etc/os-release``),
started and enabled; then the fleet's **current release**, read from SSM Parameter Store (the pointer
``PREFIX/release/current``, then the release's script for this architecture in base64 chunks of gzip, checked
against its sha256), recorded on the instance (its tag ``archfleet:release`` and ``/var/lib/archfleet/spot/release``)
and run. ``archfleet.spot.release`` publishes releases (``spot up``, and each sync that changes the fleet's hosts).

The release script (``release_script``) is made from the same pieces a host bootstrap and a sync use, so that
the next ``archfleet hosts bootstrap`` and ``archfleet sync`` find nothing to change:

1. each registry's CA (``/etc/docker/certs.d/ADDRESS/ca.crt``) and login (the password in
   ``/etc/archfleet/registry/ADDRESS.password``, root-only, fed to ``docker login`` on stdin): the password comes
   from an SSM Parameter Store SecureString, an ECR password from ECR with the instance role;
2. the services' files (rendered templates inline; secret files, and every file of a service that has secrets,
   from SSM), then the step scripts of ``tasks/service_commands.py`` (pull by digest, switch), with the very
   ``docker create`` argv, labels and spec hashes the sync pipeline computes for a fresh host of the fleet's role;
3. the spot interruption watcher (``tasks/spot_watcher.py``'s files, systemd unit or init script chosen at boot).

No secret is in the text: user-data is readable through the metadata service by anything on the host. Secrets are
read at boot with the instance role: an IMDSv2 token, the role's credentials, then SSM GetParameter
(WithDecryption) over its public JSON API, signed by ``curl --aws-sigv4`` (curl 7.75+, in every supported distro;
the credentials reach curl on stdin through ``--config -``, never argv). SSM values are base64 of the secret's
bytes, so a plain ``sed`` reads them out of the JSON answer without python3 or jq on the image.
"""

from __future__ import annotations

import base64
import gzip
import posixpath
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pyinfra.api import QuoteString, StringCommand

from archfleet.errors import InputError
from archfleet.facts.registry import ca_path
from archfleet.facts.service_reads import CREDENTIALS_DIR, FILES_ROOT, password_path
from archfleet.facts.spot_watcher import INIT_SCRIPT_PATH, NAME, UNIT_PATH
from archfleet.fleet.rollout import TimeoutsSpec
from archfleet.services.desired import DesiredContainer, ManagedFile
from archfleet.tasks import docker_commands, pull_agent_commands, service_commands, spot_watcher
from archfleet.tasks.distros import SUPPORTED

USER_DATA_LIMIT = 16384  # EC2's limit on user data before base64; a longer script is gzipped (cloud-init unpacks it)
ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
SSM_TARGET = "AmazonSSM.GetParameter"


@dataclass(frozen=True)
class BootRegistry:
    """A registry the host trusts and logs in to at boot."""

    address: str
    ca_pem: bytes | None = None  # the CA to trust (None: a publicly trusted certificate)
    username: str | None = None  # None: anonymous, or ECR
    password_parameter: str | None = None  # the SSM SecureString holding the password (base64)
    ecr_registry_id: str | None = None  # ECR through the instance role (the account id)
    ecr: bool = False


@dataclass(frozen=True)
class BootPlan:
    """What the user-data says: where the instance reads its release (the same for every release)."""

    fleet: str
    arch: str
    region: str
    metadata_url: str
    ssm_endpoint: str
    ecr_endpoint: str
    ec2_endpoint: str
    parameter_prefix: str  # the fleet's ssm_prefix: PREFIX/release/current, PREFIX/releases/ID/ARCH/...
    pull_interval: int | None = None  # converge: pull: the agent's interval in seconds (None: push, no agent)


@dataclass(frozen=True)
class ReleasePlan:
    """Everything one release's script says on one architecture, worked out by ``archfleet.spot.joining`` (which
    reads the registry and the fleet file); nothing here is secret."""

    fleet: str
    arch: str
    metadata_url: str
    registries: tuple[BootRegistry, ...]
    containers: tuple[DesiredContainer, ...]  # start order
    secret_files: dict[str, str] = field(default_factory=dict)  # host path -> SSM parameter holding its content
    stop_order: tuple[str, ...] = ()
    timeouts: TimeoutsSpec = field(default_factory=TimeoutsSpec)


def _line(*parts: str | QuoteString | StringCommand) -> str:
    return str(StringCommand(*parts).get_raw_value())


def _raw(command: StringCommand) -> str:
    return str(command.get_raw_value())


def _assign(name: str, value: str) -> str:
    return f"{name}={shlex.quote(value)}"


def _write(path: str, content: bytes, mode: str) -> list[str]:
    """Lines that write ``content`` (public: never a secret) to ``path`` with ``mode``."""
    encoded = base64.b64encode(content).decode()
    return [
        _line("printf", "%s", QuoteString(encoded), "|", "base64", "-d", ">", QuoteString(path)),
        _line("chmod", mode, QuoteString(path)),
    ]


BOOT_FUNCTIONS = r"""set -u
umask 077
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
say() { echo "archfleet-boot: $*"; }
die() { echo "archfleet-failure: $*" >&2; exit 1; }
json_field() { sed -n "s/.*\"$1\" *: *\"\([^\"]*\)\".*/\1/p" | head -n 1; }
role_credentials() {
  token=$(curl -sf --max-time 10 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \
    "$METADATA_URL/latest/api/token") || die "no IMDSv2 token from $METADATA_URL"
  role=$(curl -sf --max-time 10 -H "X-aws-ec2-metadata-token: $token" \
    "$METADATA_URL/latest/meta-data/iam/security-credentials/" | head -n 1)
  [ -n "$role" ] || die "no instance role: the launch template needs an instance profile"
  answer=$(curl -sf --max-time 10 -H "X-aws-ec2-metadata-token: $token" \
    "$METADATA_URL/latest/meta-data/iam/security-credentials/$role") || die "no credentials for role $role"
  AWS_KEY=$(printf '%s\n' "$answer" | json_field AccessKeyId)
  AWS_SECRET=$(printf '%s\n' "$answer" | json_field SecretAccessKey)
  AWS_TOKEN=$(printf '%s\n' "$answer" | json_field Token)
  [ -n "$AWS_KEY" ] && [ -n "$AWS_SECRET" ] || die "the role's credentials are incomplete"
}
aws_call() {
  # SERVICE ENDPOINT TARGET BODY: one signed JSON call; the credentials reach curl on stdin, never in argv.
  printf 'user = "%s:%s"\nheader = "x-amz-security-token: %s"\n' "$AWS_KEY" "$AWS_SECRET" "$AWS_TOKEN" |
    curl -sS -f --max-time 30 --config - --aws-sigv4 "aws:amz:$REGION:$1" -H "X-Amz-Target: $3" \
      -H 'Content-Type: application/x-amz-json-1.1' --data-binary "$4" "$2"
}
ssm_value() {
  # NAME: a plain String parameter's value (ids, hex, base64: no quotes) on stdout.
  answer=$(aws_call ssm "$SSM_ENDPOINT" AmazonSSM.GetParameter "{\"Name\":\"$1\"}") ||
    die "cannot read SSM parameter $1 from $SSM_ENDPOINT"
  value=$(printf '%s\n' "$answer" | json_field Value)
  [ -n "$value" ] || die "SSM parameter $1 has no value"
  printf '%s\n' "$value"
}
tag_instance() {
  # KEY (URL-safe) VALUE: a tag on this instance (EC2 CreateTags with the role), where `spot status` reads it.
  token=$(curl -sf --max-time 10 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \
    "$METADATA_URL/latest/api/token") || return 1
  instance=$(curl -sf --max-time 10 -H "X-aws-ec2-metadata-token: $token" \
    "$METADATA_URL/latest/meta-data/instance-id") || return 1
  case $instance in i-*) ;; *) return 1 ;; esac
  case $instance in *[!a-z0-9-]*) return 1 ;; esac
  printf 'user = "%s:%s"\nheader = "x-amz-security-token: %s"\n' "$AWS_KEY" "$AWS_SECRET" "$AWS_TOKEN" |
    curl -sS -f --max-time 30 --config - --aws-sigv4 "aws:amz:$REGION:ec2" \
      --data "Action=CreateTags&Version=2016-11-15&ResourceId.1=$instance&Tag.1.Key=$1" \
      --data-urlencode "Tag.1.Value=$2" "$EC2_ENDPOINT" >/dev/null
}
ssm_get() {
  # NAME DEST: a SecureString parameter (base64 of the secret) decoded into a root-only file.
  [ -n "${AWS_KEY:-}" ] || role_credentials
  answer=$(aws_call ssm "$SSM_ENDPOINT" AmazonSSM.GetParameter "{\"Name\":\"$1\",\"WithDecryption\":true}") ||
    die "cannot read SSM parameter $1 from $SSM_ENDPOINT"
  value=$(printf '%s\n' "$answer" | json_field Value)
  [ -n "$value" ] || die "SSM parameter $1 has no value"
  rm -f "$2"
  printf '%s' "$value" | base64 -d >"$2" || die "SSM parameter $1 is not base64"
}
fetch_release() {
  # ID DEST: release ID's script for $ARCH from SSM (its head, chunks, sha256) into DEST; dies on any mismatch.
  head=$(ssm_value "$RELEASES/$1/$ARCH/head") || exit 1
  sum=${head%% *}
  parts=${head#* }
  case $parts in ''|*[!0-9]*) die "SSM parameter $RELEASES/$1/$ARCH/head is not 'SHA256 PARTS'" ;; esac
  install -d -m 0700 "$SPOT_DIR" && rm -f "$2.b64" || die "cannot write $SPOT_DIR"
  i=0
  while [ "$i" -lt "$parts" ]; do
    ssm_value "$RELEASES/$1/$ARCH/$i" >>"$2.b64" || exit 1
    i=$((i + 1))
  done
  base64 -d "$2.b64" | gzip -dc >"$2" || die "release $1 ($ARCH) cannot be unpacked"
  printf '%s  %s\n' "$sum" "$2" | sha256sum -c - >/dev/null 2>&1 ||
    die "release $1 ($ARCH) does not match its sha256 $sum"
}
ecr_password() {
  # REGISTRY_ID DEST: an ECR password (the token is base64 of AWS:PASSWORD) with the instance role.
  [ -n "${AWS_KEY:-}" ] || role_credentials
  if [ -n "$1" ]; then body="{\"registryIds\":[\"$1\"]}"; else body='{}'; fi
  answer=$(aws_call ecr "$ECR_ENDPOINT" ECR_TARGET "$body") || die "cannot get an ECR token from $ECR_ENDPOINT"
  value=$(printf '%s\n' "$answer" | json_field authorizationToken)
  [ -n "$value" ] || die "ECR answered no authorization token"
  rm -f "$2"
  printf '%s' "$value" | base64 -d | cut -d: -f2- | tr -d '\n' >"$2"
}
""".replace("ECR_TARGET", ECR_TARGET)


def _engine_lines() -> list[str]:
    """Docker from the distro's own package (what ``tasks/docker_engine.engine_running`` installs), chosen at boot
    from /etc/os-release among ``tasks/distros.SUPPORTED``; started and waited for."""
    lines = ["if ! command -v docker >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then",
             "  [ -r /etc/os-release ] && . /etc/os-release",
             '  case "${ID:-} ${VERSION_ID:-}" in']
    for (distro_id, version), distro in SUPPORTED.items():
        packages = [distro.engine_package, *distro.curl_packages, *distro.nc_packages]
        commands = [_raw(c) for c in distro.install(packages)]
        if not distro.package_enables_engine:
            commands.append(_raw(docker_commands.enable_engine("systemd")))
        lines.append(f"    {shlex.quote(f'{distro_id} {version}')}) {' && '.join(commands)} || "
                     f"die {shlex.quote(f'installing Docker on {distro.name} failed')} ;;")
    names = ", ".join(d.name for d in SUPPORTED.values())
    lines += [f'    *) die "Docker on ${{PRETTY_NAME:-an unknown distro}} is not supported; supported: {names}" ;;',
              "  esac", "fi",
              "if ! docker version >/dev/null 2>&1; then",
              f"  if [ -d /run/systemd/system ]; then {_raw(docker_commands.start_engine('systemd'))}",
              f"  elif [ -x /etc/init.d/docker ]; then {_raw(docker_commands.start_engine('sysvinit'))}",
              f"  else {_raw(docker_commands.start_engine('none'))}",
              "  fi",
              f"  ( {_raw(docker_commands.wait_for_engine())} ) || die 'the Docker engine did not start'",
              "fi"]
    return lines


def _registry_lines(registry: BootRegistry) -> list[str]:
    lines = [_line("say", QuoteString(f"registry {registry.address}"))]
    if registry.ca_pem is not None:
        lines.append(_raw(docker_commands.public_directory(posixpath.dirname(ca_path(registry.address)))))
        lines += _write(ca_path(registry.address), registry.ca_pem, "0644")
    secret = password_path(registry.address)
    if registry.ecr:
        lines += [_raw(docker_commands.private_directory(CREDENTIALS_DIR)),
                  _line("ecr_password", QuoteString(registry.ecr_registry_id or ""), QuoteString(secret)),
                  _raw(docker_commands.login(registry.address, "AWS", secret)) + " || die "
                  + shlex.quote(f"docker login to {registry.address} failed")]
    elif registry.username is not None and registry.password_parameter is not None:
        lines += [_raw(docker_commands.private_directory(CREDENTIALS_DIR)),
                  _line("ssm_get", QuoteString(registry.password_parameter), QuoteString(secret)),
                  _raw(docker_commands.login(registry.address, registry.username, secret)) + " || die "
                  + shlex.quote(f"docker login to {registry.address} failed")]
    return lines


def _file_lines(files: Sequence[ManagedFile], secret_files: dict[str, str]) -> list[str]:
    if not files:
        return []
    directories = sorted({f.host_path.rsplit("/", 1)[0] for f in files})
    parents = sorted({d.rsplit("/", 1)[0] for d in directories})
    lines = [_raw(docker_commands.private_directory(FILES_ROOT, *parents, *directories))]
    for managed in files:
        parameter = secret_files.get(managed.host_path)
        if parameter is not None:
            lines.append(_line("ssm_get", QuoteString(parameter), QuoteString(managed.host_path)))
        elif managed.secret:
            raise InputError(f"user-data: the secret {managed.host_path} has no SSM parameter")  # never inline
        else:
            lines += _write(managed.host_path, managed.content, managed.mode)
    lines.append(_raw(docker_commands.own_files([(f.owner, f.mode, f.host_path) for f in files])))
    return lines


def _service_lines(plan: ReleasePlan) -> list[str]:
    if not plan.containers:
        return []
    images = sorted({c.image for c in plan.containers})
    lines = [_line("say", QuoteString(f"pulling {len(images)} image(s)")),
             _raw(service_commands.pull_images(images, int(plan.timeouts.pull))) + " || die 'pull failed'"]
    for desired in plan.containers:
        lines += [_line("say", QuoteString(f"starting {desired.name}")),
                  _raw(service_commands.switch_container(desired, int(plan.timeouts.start), int(plan.timeouts.health)))
                  + " || die " + shlex.quote(f"{desired.name} did not start")]
    return lines


def _watcher_lines(plan: ReleasePlan) -> list[str]:
    config = spot_watcher.watcher_config(plan.metadata_url, plan.stop_order)

    def start(init: str) -> str:
        if init == "systemd":
            return (f"systemctl daemon-reload && {_raw(spot_watcher.enable(init))} && "
                    f"{_raw(spot_watcher.service(init, 'restart'))}")
        return (f"{_raw(spot_watcher.enable(init))} >/dev/null && "
                f"{_raw(spot_watcher.service(init, 'restart'))} >/dev/null")

    assert UNIT_PATH and INIT_SCRIPT_PATH and NAME  # the watcher's files are spot_watcher's own
    return [_line("say", "the spot interruption watcher"),
            *_runner_lines(lambda init: spot_watcher.watcher_files(init, config), start,
                           "the spot interruption watcher")]


def _runner_lines(files: Callable[[str], Mapping[str, tuple[str, str]]], start: Callable[[str], str],
                  what: str) -> list[str]:
    """Install a runner's files (path -> content, mode) for the init system this instance runs (systemd, else
    sysvinit) and start it: one ``if``, both branches; ``die`` when it did not start."""
    lines = ["if [ -d /run/systemd/system ]; then"]
    for init in ("systemd", "sysvinit"):
        if init == "sysvinit":
            lines.append("else")
        for path, (content, mode) in files(init).items():
            lines.append("  " + _raw(docker_commands.public_directory(posixpath.dirname(path))))
            lines += ["  " + line for line in _write(path, content.encode(), mode)]
        lines.append("  " + start(init))
    lines.append(f"fi || die '{what} did not start'")
    return lines


SPOT_DIR = "/var/lib/archfleet/spot"  # on the instance: the release it booted (file ``release``) and its script
RELEASE_TAG = "archfleet:release"  # the instance's tag naming the release it booted


def release_pointer(prefix: str) -> str:
    """The String parameter naming the fleet's current release."""
    return f"{prefix.rstrip('/')}/release/current"


def releases_path(prefix: str) -> str:
    """Under it, one folder per published release: ``ID/manifest``, ``ID/ARCH/head`` and ``ID/ARCH/0..N-1``."""
    return f"{prefix.rstrip('/')}/releases"


RELEASE_LINES = r"""say "reading the current release from SSM ($SSM_ENDPOINT)"
role_credentials
RELEASE=$(ssm_value "$RELEASE_POINTER") || exit 1
case $RELEASE in ''|*[!A-Za-z0-9_.-]*) die "SSM parameter $RELEASE_POINTER does not name a release" ;; esac
fetch_release "$RELEASE" "$SPOT_DIR/release.sh"
tag_instance "$RELEASE_TAG_KEY" "$RELEASE" ||
  say "could not tag this instance with its release (the role needs ec2:CreateTags on its instance)"
say "release $RELEASE"
. "$SPOT_DIR/release.sh"
printf '%s\n' "$RELEASE" >"$SPOT_DIR/release" && chmod 0644 "$SPOT_DIR/release"
"""


def _boot_variables(plan: BootPlan) -> list[str]:
    """The boot loader's settings (the pull agent has the same)."""
    prefix = plan.parameter_prefix
    return [
        _assign("METADATA_URL", plan.metadata_url.rstrip("/")),
        _assign("REGION", plan.region),
        _assign("ARCH", plan.arch),
        _assign("SSM_ENDPOINT", plan.ssm_endpoint),
        _assign("ECR_ENDPOINT", plan.ecr_endpoint),
        _assign("EC2_ENDPOINT", plan.ec2_endpoint),
        _assign("RELEASE_POINTER", release_pointer(prefix)),
        _assign("RELEASES", releases_path(prefix)),
        _assign("RELEASE_TAG_KEY", RELEASE_TAG.replace(":", "%3A")),
        _assign("SPOT_DIR", SPOT_DIR),
    ]


def pull_agent_script(plan: BootPlan, interval: int) -> str:
    """The pull agent of a ``converge: pull`` fleet's instance (``tasks/pull_agent_commands.py``): the boot
    loader's functions and settings, then one converge to ``release/current``. No secrets in it."""
    return "\n".join([
        "#!/bin/sh",
        f"# archfleet: spot fleet {plan.fleet} ({plan.arch}): the pull agent (tasks/pull_agent_commands.py).",
        BOOT_FUNCTIONS.rstrip("\n"),
        *_boot_variables(plan),
        _assign("PULL_INTERVAL", str(int(interval))),
        _assign("CONVERGE_TAG_KEY", pull_agent_commands.CONVERGE_TAG.replace(":", "%3A")),
        pull_agent_commands.AGENT_BODY.rstrip("\n"),
    ]) + "\n"


def _pull_agent_lines(plan: BootPlan, interval: int) -> list[str]:
    """Install the pull agent and its runner (a systemd timer, else an init script looping with sleep), started
    once the boot's release runs: its first tick finds that release applied."""
    converge_tag = shlex.quote(pull_agent_commands.CONVERGE_TAG.replace(":", "%3A"))
    lines = [# the boot's own release is this instance's first converge: recorded as the agent records one, so that
             # `verify` and `spot status` see a freshly booted instance as converged, not as "no converge yet"
             'result="$RELEASE $(date -u +%Y-%m-%dT%H:%M:%SZ) ok"',
             'printf \'%s\\n\' "$result" >"$SPOT_DIR/result" && chmod 0644 "$SPOT_DIR/result"',
             f'tag_instance {converge_tag} "$result" || say "could not tag this instance with its converge result"',
             _line("say", QuoteString(f"the pull agent, every {int(interval)} s")),
             _raw(docker_commands.public_directory(posixpath.dirname(pull_agent_commands.AGENT_PATH))),
             *_write(pull_agent_commands.AGENT_PATH, pull_agent_script(plan, interval).encode(), "0755")]
    return lines + _runner_lines(lambda init: pull_agent_commands.runner_files(init, interval),
                                 lambda init: " && ".join(pull_agent_commands.start_lines(init)), "the pull agent")


def boot_script(plan: BootPlan) -> str:
    """The ``#!/bin/sh`` user-data of one architecture's launch template (text; see ``encoded``): the engine, then
    the fleet's current release from SSM, recorded and run; in pull mode then the pull agent. The same text for
    every release."""
    lines = [
        "#!/bin/sh",
        f"# archfleet: spot fleet {plan.fleet} ({plan.arch}): joins at first boot (archfleet/spot/user_data.py).",
        "# No secrets in here: they are read from SSM Parameter Store with the instance role. The services come",
        "# from the fleet's current release (SSM), which `spot up` and `archfleet sync` publish.",
        BOOT_FUNCTIONS.rstrip("\n"),
        *_boot_variables(plan),
        "say start",
        *_engine_lines(),
        RELEASE_LINES.rstrip("\n"),
        *(_pull_agent_lines(plan, plan.pull_interval) if plan.pull_interval else []),
        "say joined",
    ]
    return "\n".join(lines) + "\n"


def release_script(plan: ReleasePlan) -> str:
    """What one release runs on an instance of ``plan.arch``, sourced by the boot script (its functions ``say``,
    ``die``, ``ssm_get`` and ``ecr_password`` are there): registries, files, services, the watcher."""
    files = [f for c in plan.containers for f in c.files]
    lines = [
        f"# archfleet: spot fleet {plan.fleet} ({plan.arch}): a release's services (archfleet/spot/user_data.py).",
        *(line for registry in plan.registries for line in _registry_lines(registry)),
        *_file_lines(files, plan.secret_files),
        *_service_lines(plan),
        *_watcher_lines(plan),
    ]
    return "\n".join(lines) + "\n"


def encoded(script: str) -> str:
    """The launch template's ``UserData``: base64 of the script, gzipped (deterministically) when it is over EC2's
    16 KB; an InputError when even that is too long."""
    raw = script.encode()
    if len(raw) > USER_DATA_LIMIT:
        raw = gzip.compress(raw, compresslevel=9, mtime=0)
        if len(raw) > USER_DATA_LIMIT:
            raise InputError(f"user-data: {len(raw)} bytes gzipped, over EC2's {USER_DATA_LIMIT}: too many services "
                             "for one launch template")
    return base64.b64encode(raw).decode()


def decoded(user_data: str) -> str:
    """The script of a launch template's ``UserData`` (as cloud-init reads it: gzip when it starts gzipped)."""
    raw = base64.b64decode(user_data)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode()
