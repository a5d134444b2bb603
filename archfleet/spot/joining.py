"""What a spot fleet's new instance needs to join by itself, worked out at ``spot up`` and after each sync that
changes the fleet's hosts: its services (the fleet file's services for the groups the instance will be in: its
architecture, ``spot``, the fleet's role), pinned by digest (the registry read once, or the sync's own reads),
rendered exactly as the sync pipeline renders them for a fresh host; the registries it logs in to; and the secrets,
which go to SSM Parameter Store as SecureStrings (never into the user-data or the release). The pure builders of
the scripts are ``archfleet.spot.user_data``; ``archfleet.spot.release`` publishes the release.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from archfleet.credentials import ECR_USER, credentials_for, ecr_settings, fleet_registry_login
from archfleet.errors import InputError, OperationFailed
from archfleet.fleet import Fleet, service_reference
from archfleet.fleet.spot import SpotFleetSpec
from archfleet.placement import container_name, services_in_groups, stop_order
from archfleet.references import parse
from archfleet.services.desired import DesiredContainer, desired_container, fleet_context
from archfleet.services.preflight import pin_services
from archfleet.spot.connection import AwsClient, ssm_client
from archfleet.spot.user_data import BootPlan, BootRegistry, ReleasePlan, boot_script, encoded, release_script
from archfleet.tasks.spot_watcher import DEFAULT_METADATA_URL

if TYPE_CHECKING:
    from archfleet.images.verify import VerifyReport

# The names a new instance renders with: it has no name before it boots. Rendering twice, with two names and
# with a fleet context that holds one more host, shows whether a service's rendering depends on either.
PLACEHOLDER_HOSTS = ("i-0000000000000000a", "i-0000000000000000b")
PARAMETER_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class JoiningHost:
    """One architecture's user-data, its release script and the SecureString parameters that reads (name -> value,
    base64)."""

    arch: str
    user_data: str  # the launch template's UserData (base64): the same for every release
    release_script: str  # what the release runs on a new instance of this architecture
    parameters: dict[str, str]
    containers: tuple[DesiredContainer, ...]

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(c.service for c in self.containers)


def instance_groups(spec: SpotFleetSpec, arch: str) -> list[str]:
    """The groups ``inventories/ec2.py`` puts an instance of the fleet in."""
    return [arch, "spot", *([spec.role] if spec.role else [])]


def _parameter(prefix: str, *parts: str) -> str:
    return "/".join([prefix.rstrip("/"), *(PARAMETER_SAFE.sub("_", part) for part in parts)])


def _host_independent(fleet: Fleet, spec_name: str, rendered: list[DesiredContainer]) -> None:
    if len({c.spec_hash for c in rendered}) > 1:
        service = fleet.services[spec_name]
        raise InputError(f"{service.node.where}: services.{spec_name}: renders differently per host (host.name, "
                         "hosts or service_hosts in a template or environment value), so it cannot start from a "
                         "spot fleet's user-data: set `user_data: false` on the fleet and use `spot up --sync`")


def desired_for_new_instance(fleet: Fleet, spec: SpotFleetSpec, arch: str,
                             reports: dict[str, VerifyReport] | None = None) -> list[DesiredContainer]:
    """The containers a new instance of ``arch`` runs, in start order: what plan_one_host would want on a fresh
    host of the fleet (the registry is read once per tag; ``reports``: a sync's own reads of the tags)."""
    platform = f"linux/{arch}"
    services = services_in_groups(fleet.services, instance_groups(spec, arch))
    if not services:
        return []
    pins = pin_services(fleet, {s.name: {platform: [f"a new {arch} instance of {spec.name}"]} for s in services},
                        reports)
    context = fleet_context(fleet)
    grown = replace(
        context,
        hosts={**context.hosts, PLACEHOLDER_HOSTS[1]: {"address": "192.0.2.1"}},
        service_hosts={name: [*hosts, PLACEHOLDER_HOSTS[1]] for name, hosts in context.service_hosts.items()},
    )
    result = []
    for service in services:
        pinned = pins[service.name]
        rendered = [desired_container(service, tag=pinned.tag, repository=pinned.repository,
                                      digest=pinned.digests[platform], host_name=host, platform=platform,
                                      context=variant)
                    for host, variant in ((PLACEHOLDER_HOSTS[0], context), (PLACEHOLDER_HOSTS[1], grown))]
        _host_independent(fleet, service.name, rendered)
        result.append(rendered[0])
    return result


def boot_registries(fleet: Fleet, spec: SpotFleetSpec, containers: list[DesiredContainer]
                    ) -> tuple[list[BootRegistry], dict[str, str]]:
    """The fleet's own registry and every other one the services pull from (as ``deploys/host.py`` sets them up),
    and the SSM parameters of their passwords (name -> base64)."""
    parameters: dict[str, str] = {}
    registries: list[BootRegistry] = []
    own = fleet_registry_login(fleet)
    pulled = sorted({parse(service_reference(fleet, fleet.services[c.service])).registry for c in containers})
    for address in [own.registry, *(r for r in pulled if r != own.registry)]:
        entry = fleet.registries.get(address) if address != own.registry else None
        login = own if address == own.registry else None
        ca_file = login.ca_file if login else (entry.ca_file if entry else None)
        ca = ca_file.read_bytes() if ca_file else None
        ecr = ecr_settings(address, entry) if login is None else None
        if ecr is not None:
            registries.append(BootRegistry(address, ca, ECR_USER, None, ecr.registry_id, ecr=True))
            continue
        credentials = login.credentials if login else credentials_for(address, entry)
        if credentials is None:
            registries.append(BootRegistry(address, ca))
            continue
        name = _parameter(spec.parameter_prefix, "registry", address)
        parameters[name] = base64.b64encode(credentials.secret.encode()).decode()
        registries.append(BootRegistry(address, ca, credentials.username, name))
    return registries, parameters


def with_file_contents(deployed: DesiredContainer, rendered: DesiredContainer) -> DesiredContainer:
    """A container a sync deployed whose files came without their content (a rollback's, from a host's release
    record) takes them from the fleet file's rendering of the same versions (a version's folder is named by its
    content); a version only the hosts hold cannot go into a release."""
    known = {f.host_path: f for f in rendered.files}
    files = []
    for managed in deployed.files:
        if managed.host_path in known:
            files.append(known[managed.host_path])
        elif managed.content:
            files.append(managed)
        else:
            raise OperationFailed(f"{deployed.service} mounts {managed.host_path}, whose content only the hosts "
                                  "hold (the fleet file renders another version): no release can carry it")
    return replace(deployed, files=files)


def joining_host(fleet: Fleet, spec: SpotFleetSpec, arch: str, ec2: AwsClient,
                 reports: dict[str, VerifyReport] | None = None,
                 deployed: Mapping[str, DesiredContainer] | None = None) -> JoiningHost:
    """``deployed``: service -> the container a sync just rolled out on a host of this fleet and architecture
    (what a rollback put back, say), used instead of the fleet file's rendering of that service."""
    containers = [with_file_contents((deployed or {})[c.service], c) if c.service in (deployed or {}) else c
                  for c in desired_for_new_instance(fleet, spec, arch, reports)]
    registries, parameters = boot_registries(fleet, spec, containers)
    secret_files: dict[str, str] = {}
    for desired in containers:
        service = fleet.services[desired.service]
        for managed in desired.files:
            # A rendered template may use `secrets`: every file of a service with secrets stays out of user-data.
            if managed.secret or service.secrets:
                name = _parameter(spec.parameter_prefix, arch, "services", desired.service,
                                  managed.host_path.rsplit("/", 2)[-2], managed.host_path.rsplit("/", 1)[-1])
                parameters[name] = base64.b64encode(managed.content).decode()
                secret_files[managed.host_path] = name
    ssm = ssm_client(ec2, f"spot fleet {spec.name}: user-data")
    ecr_endpoint = ec2.session.client("ecr", region_name=ec2.region).meta.endpoint_url
    # The same setting as inventories/ec2.py's (the watcher's metadata address; tests point it elsewhere).
    metadata_url = os.environ.get("ARCHFLEET_EC2_METADATA_URL") or DEFAULT_METADATA_URL
    boot = BootPlan(fleet=spec.name, arch=arch, region=ec2.region, metadata_url=metadata_url,
                    ssm_endpoint=ssm.endpoint, ecr_endpoint=str(ecr_endpoint), ec2_endpoint=ec2.endpoint,
                    parameter_prefix=spec.parameter_prefix, pull_interval=spec.pull_interval if spec.pulls else None)
    release = ReleasePlan(
        fleet=spec.name, arch=arch, metadata_url=metadata_url,
        registries=tuple(registries), containers=tuple(containers), secret_files=secret_files,
        stop_order=tuple(container_name(s.name) for s in stop_order(fleet.services[c.service] for c in containers)),
        timeouts=fleet.timeouts,
    )
    return JoiningHost(arch, encoded(boot_script(boot)), release_script(release), parameters, tuple(containers))
