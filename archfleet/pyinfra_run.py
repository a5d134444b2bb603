"""Running a deploy with the pyinfra CLI and reading its JSON results: per host, what changed and what failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archfleet.errors import OperationFailed


@dataclass
class HostResult:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass
class DeployResult:
    returncode: int
    hosts: dict[str, HostResult]
    failed_hosts: list[str]
    dry: bool

    @property
    def changed_hosts(self) -> list[str]:
        return sorted(h for h, r in self.hosts.items() if r.changed)


def pyinfra_argv(*args: str, limit: str | list[str] | None = None) -> list[str]:
    """The venv's pyinfra with JSON results on stdout (its progress stays on stderr)."""
    argv = [str(Path(sys.executable).parent / "pyinfra"), "--json", *args]
    for name in [limit] if isinstance(limit, str) else (limit or []):
        argv += ["--limit", name]
    return argv


def gather_fact(inventory: Path, fact: str, limit: str | None = None) -> dict[str, Any]:
    """``{host: value}`` of one fact over an inventory (None for a host pyinfra could not read)."""
    result = subprocess.run(pyinfra_argv(str(inventory), "fact", fact, limit=limit), capture_output=True,
                            text=True, check=False)
    try:
        facts: dict[str, Any] = json.loads(result.stdout).get(fact, {})
    except json.JSONDecodeError:
        lines = result.stderr.strip().splitlines()
        raise OperationFailed(f"pyinfra failed: {lines[-1] if lines else result.returncode}") from None
    return facts


def run_deploy(
    inventory: Path, deploy: Path, *, dry: bool = False, limit: str | list[str] | None = None,
    env: dict[str, str] | None = None, extra_args: Sequence[str] = (),
) -> DeployResult:
    """Run ``pyinfra INVENTORY DEPLOY`` with --json; pyinfra's progress goes straight to our stderr."""
    argv = pyinfra_argv("--dry" if dry else "-y", str(inventory), str(deploy), *extra_args, limit=limit)
    result = subprocess.run(
        argv, stdout=subprocess.PIPE, text=True, check=False,
        env={**os.environ, **(env or {})},
    )
    try:
        payload = json.loads(result.stdout) if result.stdout.strip() else {}
    except json.JSONDecodeError:
        raise OperationFailed(f"pyinfra printed no JSON results (exit {result.returncode})") from None
    hosts: dict[str, HostResult] = {}
    results = payload.get("results")
    if results:
        for op in results["operations"]:
            for key, attribute in (("success", "changed"), ("no_change", "unchanged"), ("error", "failed")):
                for host_name in op[key]:
                    getattr(hosts.setdefault(host_name, HostResult()), attribute).append(op["name"])
    elif payload.get("plan"):
        for op in payload["plan"]:
            for host_name in op["hosts_with_change"] + op["hosts_with_conditional_change"]:
                hosts.setdefault(host_name, HostResult()).changed.append(op["name"])
    failed = sorted((results or {}).get("failed_hosts", []))
    return DeployResult(result.returncode, hosts, failed, dry)


def print_summary(result: DeployResult, title: str) -> None:
    """One line per host on stdout, then a total."""
    verb = "would change" if result.dry else "changed"
    for name in sorted(set(result.hosts) | set(result.failed_hosts)):
        host = result.hosts.get(name, HostResult())
        if name in result.failed_hosts or host.failed:
            status = f"FAILED ({', '.join(dict.fromkeys(host.failed)) or 'connection or command error'})"
        elif host.changed:
            status = f"{verb}: {', '.join(host.changed)}"
        else:
            status = "no changes"
        print(f"{title}\t{name}\t{status}")
    changed = len(result.changed_hosts)
    failed = len(set(result.failed_hosts) | {h for h, r in result.hosts.items() if r.failed})
    print(f"{title}: {len(result.hosts)} host(s), {changed} {verb}, {failed} failed")
