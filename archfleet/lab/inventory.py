"""The running lab as pyinfra inventory groups (used by ``inventories/lab.py``)."""

from __future__ import annotations

from typing import Any

from archfleet.lab.state import HOST_KINDS, LabHost, LabState, load

HostEntry = tuple[str, dict[str, Any]]


def host_data(state: LabState, host: LabHost) -> dict[str, Any]:
    """Connection data for pyinfra (host key checking on) and where the registry's trust comes from. A cloud-kind
    host logs in as ``admin`` and goes through sudo."""
    user = host.login_user(state.ssh_user)
    return {
        "ssh_hostname": host.address,
        "ssh_user": user,
        **({"_sudo": True} if user != "root" else {}),
        "ssh_key": state.ssh_key,
        "ssh_known_hosts_file": state.known_hosts,
        "ssh_strict_host_key_checking": "yes",
        "ssh_look_for_keys": False,
        "ssh_allow_agent": False,
        "lab_arch": host.arch,
        "lab_kind": host.kind,
        "lab_container": host.container,
        "registry_address": state.registry.address,
        "registry_username": state.registry.username,
        "registry_password_file": state.registry.password_file,
        "registry_ca_file": state.registry.ca_cert,
    }


def lab_groups(state: LabState | None = None) -> dict[str, list[HostEntry]]:
    """Groups by host kind: ``{"amd64": [(name, data), ...], "arm64": [...], ...}`` for the lab that is up."""
    state = state or load()
    return {kind: [(h.name, host_data(state, h)) for h in state.hosts_of(kind)] for kind in HOST_KINDS}
