"""Running local commands with progress output and one-line failures."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence

from archfleet.errors import OperationFailed


def say(message: str) -> None:
    """Progress output: one line on stderr, so stdout stays for results."""
    sys.stderr.write(f"archfleet: {message}\n")  # one write: lines from concurrent steps never interleave
    sys.stderr.flush()


def run(
    argv: Sequence[str],
    *,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a local command; on failure raise OperationFailed with the command and its last error line.

    Secrets go through ``input_text`` (stdin), never through ``argv``.
    """
    result = subprocess.run(
        list(argv),
        input=input_text,
        env=dict(env) if env is not None else None,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip().splitlines()
        last = detail[-1] if detail else f"exit {result.returncode}"
        raise OperationFailed(f"`{shlex.join(argv)}` failed: {last}")
    return result


def succeeds(argv: Sequence[str], timeout: float | None = 30) -> bool:
    try:
        return subprocess.run(list(argv), capture_output=True, timeout=timeout, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
