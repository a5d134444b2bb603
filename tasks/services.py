"""Operations about archfleet's services on one host that need no plan: failing a host with a reason, and the
read-only proof of what runs (deploys/verify.py). The operation that carries out a sync's plan on a host is
archfleet.sync.operation."""

from __future__ import annotations

from collections.abc import Generator

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from archfleet.services.proof import OK, ProofRow


def failed_host_command(reason: str) -> StringCommand:
    """Fail this host only, with ``reason`` as its error."""
    return StringCommand("echo", QuoteString(reason), ">&2;", "exit", "1")


@operation(is_idempotent=True)
def proven(row: ProofRow) -> Generator[StringCommand, None, None]:
    """Read-only: a no-op when the proof holds, else a command that fails the host with the reason."""
    if row.verdict == OK:
        host.noop(f"{row.service}: {row.image_platform} image, uname -m {row.inner_machine}, digest {row.digest}")
        return
    yield failed_host_command(f"{row.service}: {row.reason or row.state}")
