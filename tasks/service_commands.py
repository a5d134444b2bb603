"""Command text for running service containers. Pure: builds text, runs nothing.

The replace script is one command per service rollout: pull by digest, stop and keep the previous container,
create and start the new one, wait for its health check, then either drop the previous container and old file
versions, or print the new container's last log lines, put the previous container back and fail.
"""

from __future__ import annotations

import shlex

from pyinfra.api import QuoteString, StringCommand

from archfleet.services.desired import DesiredContainer
from facts.services import DIGEST_LABEL, FILES_ROOT, SERVICE_LABEL, SPEC_LABEL, TAG_LABEL

LOG_LINES = 20
STATUS_FORMAT = "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}"


def q(value: str) -> str:
    return shlex.quote(value)


def create_argv(desired: DesiredContainer) -> list[str]:
    labels = {
        SERVICE_LABEL: desired.service,
        SPEC_LABEL: desired.spec_hash,
        DIGEST_LABEL: desired.digest,
        TAG_LABEL: desired.tag,
    }
    argv = ["docker", "create", "--name", desired.name]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    return [*argv, *desired.create_args, desired.image, *desired.command]


def wait_script(name: str, healthcheck: bool, timeout: int) -> str:
    """Sets ``ok=1`` when the container is healthy (or, without a health check, still running after 3 s)."""
    settle = "0" if healthcheck else "1"
    return (
        f"ok=0; status=missing; for i in $(seq {timeout}); do "
        f"status=$(docker inspect --format {q(STATUS_FORMAT)} {q(name)} 2>/dev/null || echo missing); "
        f'case "$status" in healthy) ok=1; break ;; '
        f'running) if [ {settle} = 1 ] && [ "$i" -ge 3 ]; then ok=1; break; fi ;; '
        "exited|dead|unhealthy|missing) break ;; esac; sleep 1; done"
    )


def prune_file_versions(desired: DesiredContainer) -> str:
    keep = sorted({f.host_path.rsplit("/", 2)[-2] for f in desired.files})
    patterns = "|".join(f"*/{k}/" for k in keep) or "__none__"
    directory = f"{FILES_ROOT}/{desired.service}"
    return f'for d in {q(directory)}/*/; do case "$d" in {patterns}) ;; *) rm -rf "$d" ;; esac; done 2>/dev/null'


def replace_container(desired: DesiredContainer) -> StringCommand:
    name, previous = q(desired.name), q(desired.previous_name)
    create = " ".join(q(a) for a in create_argv(desired))
    script = "; ".join([
        "set -e",
        f"docker pull -q {q(desired.image)} >/dev/null",
        f"docker rm -f {previous} >/dev/null 2>&1 || true",
        f"if docker container inspect {name} >/dev/null 2>&1; then docker stop -t 10 {name} >/dev/null; "
        f"docker rename {name} {previous}; fi",
        f"{create} >/dev/null",
        f"docker start {name} >/dev/null",
        "set +e",
        wait_script(desired.name, desired.healthcheck, desired.wait_seconds),
        f'if [ "$ok" = 1 ]; then docker rm -f {previous} >/dev/null 2>&1; {prune_file_versions(desired)}; exit 0; fi',
        f'echo "{desired.name} did not become healthy (status: $status); its last log lines:" >&2',
        f"docker logs --tail {LOG_LINES} {name} 2>&1 | sed 's/^/    | /' >&2",
        f"docker rm -f {name} >/dev/null",
        f"if docker container inspect {previous} >/dev/null 2>&1; then docker rename {previous} {name}; "
        f'docker start {name} >/dev/null; echo "put the previous {desired.name} back" >&2; fi',
        "exit 1",
    ])
    return StringCommand(script)


def start_container(desired: DesiredContainer) -> StringCommand:
    name = q(desired.name)
    return StringCommand("; ".join([
        f"docker start {name} >/dev/null",
        wait_script(desired.name, desired.healthcheck, desired.wait_seconds),
        'if [ "$ok" = 1 ]; then exit 0; fi',
        f'echo "{desired.name} did not become healthy after start (status: $status); its last log lines:" >&2',
        f"docker logs --tail {LOG_LINES} {name} 2>&1 | sed 's/^/    | /' >&2",
        "exit 1",
    ]))


def remove_service(container: str, service: str) -> StringCommand:
    return StringCommand(
        "docker", "rm", "-f", QuoteString(container), ">/dev/null", "&&",
        "rm", "-rf", QuoteString(f"{FILES_ROOT}/{service}"),
    )

