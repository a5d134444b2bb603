"""Operations that make a host run its services' containers, deciding from the ServicesState fact."""

from __future__ import annotations

from collections.abc import Generator
from io import BytesIO

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation

from archfleet.services.desired import DesiredContainer, decide
from archfleet.services.proof import OK, ProofRow
from facts.services import FILES_ROOT, ServicesStateValue
from tasks import docker_commands, service_commands


def engine_down_command() -> StringCommand:
    return StringCommand("echo 'the Docker engine does not answer: run deploys/host.py first' >&2; exit 1")


def unreadable_state_command() -> StringCommand:
    """The fact could not be read (the connection dropped): fail this host only."""
    return StringCommand("echo 'could not read the services state of this host' >&2; exit 1")


@operation()
def service_running(
    desired: DesiredContainer | None, state: ServicesStateValue | None
) -> Generator[StringCommand | FileUploadCommand, None, None]:
    """
    The service's container runs the host platform's image of its tag (pinned by digest) with the declared
    spec; its files and secrets are on the host, root-only, mounted read-only. Recreated only when the spec
    or the image digest changed, started when stopped, left alone otherwise. ``state`` is the host's
    ServicesState fact, read once by the deploy for all its operations. ``desired`` is None for a service
    this host does not run (a no-op, so that each operation is the same service on every host).
    """
    if desired is None:
        host.noop("not declared for this host")
        return
    if state is None:
        yield unreadable_state_command()
        return
    if not state["engine_running"]:
        yield engine_down_command()
        return
    decision = decide(desired, state["containers"].get(desired.name))
    if decision.action == "none":
        host.noop(f"{desired.service}: up to date ({decision.reason})")
        return
    pull = f"; pull {desired.image}" if decision.action != "start" else ""
    logger.info(f"{host.print_prefix}{desired.service}: {decision.action} ({decision.reason}{pull})")
    missing = [f for f in desired.files if state["files"].get(f.host_path) != f.sha256]
    if missing:
        yield docker_commands.private_directory(FILES_ROOT)
        yield docker_commands.private_directory(f"{FILES_ROOT}/{desired.service}")
    for managed in missing:
        yield docker_commands.private_directory(managed.host_path.rsplit("/", 1)[0])
        yield FileUploadCommand(BytesIO(managed.content), managed.host_path)
        yield docker_commands.chmod("0600", managed.host_path)
    if decision.action == "start":
        yield service_commands.start_container(desired)
    else:
        yield service_commands.replace_container(desired)


@operation()
def undeclared_services_removed(
    keep: list[str], state: ServicesStateValue | None
) -> Generator[StringCommand, None, None]:
    """Containers archfleet made for services no longer declared on this host (and leftovers of an
    interrupted rollout) are removed, with their files."""
    if state is None:
        yield unreadable_state_command()
        return
    if not state["engine_running"]:
        host.noop("the Docker engine does not answer: no containers to look at")
        return
    wanted = {f"archfleet-{name}" for name in keep}
    stale = sorted(c for c in state["containers"] if c not in wanted)
    if not stale:
        host.noop("no undeclared service containers")
        return
    for name in stale:
        service = state["containers"][name]["service"]
        logger.info(f"{host.print_prefix}{service}: remove {name} (not declared for this host)")
        if service in keep:
            yield StringCommand("docker", "rm", "-f", name)
        else:
            yield service_commands.remove_service(name, service)


@operation(is_idempotent=True)
def proven(row: ProofRow) -> Generator[StringCommand, None, None]:
    """Read-only: a no-op when the proof holds, else a command that fails the host with the reason."""
    if row.verdict == OK:
        host.noop(f"{row.service}: {row.image_platform} image, uname -m {row.inner_machine}, digest {row.digest}")
        return
    yield StringCommand("echo", QuoteString(f"{row.service}: {row.reason or row.state}"), ">&2;", "exit 1")
