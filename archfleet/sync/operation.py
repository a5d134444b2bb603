"""The plain pyinfra deploy's operation (deploys/services.py): a host's HostPlan (archfleet.sync.plan, decided from
the ServicesState fact) carried out with the step scripts `archfleet sync` runs (archfleet.sync.steps), on every
host at once; `archfleet sync` runs the same steps through pyinfra's API in batches, behind a canary."""

from __future__ import annotations

from collections.abc import Generator
from io import BytesIO

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, StringCommand, operation

from archfleet.facts.service_reads import CREDENTIALS_DIR, FILES_ROOT, password_path
from archfleet.fleet.rollout import TimeoutsSpec
from archfleet.sync.plan import SWITCHING_ACTIONS, HostPlan
from archfleet.sync.steps import finalize_command, step_command
from archfleet.tasks import docker_commands, service_commands
from archfleet.tasks.services import failed_host_command


@operation()
def services_converged(
    plan: HostPlan | None, failure: str | None = None, timeouts: TimeoutsSpec | None = None,
) -> Generator[StringCommand | FileUploadCommand, None, None]:
    """
    The host runs its declared services as its plan says: files uploaded (root-only, content-addressed), images
    pulled by digest, each changed service switched (its previous container kept until the new one is healthy,
    and put back when it is not), then previous containers and unused file versions removed. ``failure``: the
    host could not be planned (the reason fails it). A plan without steps is a no-op.
    """
    timeouts = timeouts or TimeoutsSpec()
    if failure is not None or plan is None:
        yield failed_host_command(failure or "no plan for this host")
        return
    for orphan in plan.orphans:
        logger.info(f"{host.print_prefix}{orphan.service}: kept ({orphan.reason})")
    if not plan.changed:
        host.noop(f"{len(plan.unchanged)} service(s) up to date")
        return
    for step in plan.steps:
        logger.info(f"{host.print_prefix}{step.describe()}")
    for login in plan.logins:  # expiring logins (ECR) renewed before a pull from their registry
        yield docker_commands.private_directory(CREDENTIALS_DIR)
        yield FileUploadCommand(BytesIO(login.credentials.secret.encode()), password_path(login.registry))
        yield docker_commands.own_files([("0:0", "0600", password_path(login.registry))])
        yield docker_commands.login(login.registry, login.credentials.username, password_path(login.registry))
    if plan.files:
        directories = sorted({f.host_path.rsplit("/", 1)[0] for f in plan.files})
        parents = sorted({d.rsplit("/", 1)[0] for d in directories})
        yield docker_commands.private_directory(FILES_ROOT, *parents, *directories)
        for managed in plan.files:
            yield FileUploadCommand(BytesIO(managed.content), managed.host_path)
        yield docker_commands.own_files([(f.owner, f.mode, f.host_path) for f in plan.files])
    images = sorted({s.pulls for s in plan.steps if s.pulls})
    if images:
        yield service_commands.pull_images(images, int(timeouts.pull))
    moved = []
    for step in plan.steps:
        if step.action in SWITCHING_ACTIONS:
            yield step_command(step, timeouts)
            moved.append(step)
    tidy = finalize_command(plan, moved)
    if tidy is not None:
        yield tidy
