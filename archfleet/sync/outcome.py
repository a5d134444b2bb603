"""What a step on one host came to (pure): ok, or failed with a one-line reason."""

from __future__ import annotations

from dataclasses import dataclass, field

from archfleet.known_hosts import changed_key_reason
from archfleet.ssh import HOST_KEY_MISMATCH, connect_failure


@dataclass
class Outcome:
    """A step on one host: ok, or failed with a one-line reason; the step's stderr lines for the log."""

    ok: bool
    reason: str = ""
    stderr: list[str] = field(default_factory=list)


class StepFailed(Exception):
    def __init__(self, reason: str, stderr: list[str] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.stderr = stderr or []


def connect_reason(text: str, timeout: float) -> str:
    """What an SSH client said when it could not connect, in a few plain words (connection refused, host key
    mismatch, ...); a connection that did not complete in time says the bound."""
    reason = connect_failure(text)
    if reason == "connect timed out":
        return f"connect timed out after {timeout:g} s"
    if reason.startswith("no SSH banner"):
        return f"connect timed out after {timeout:g} s ({reason})"
    return reason


def connect_error_reason(error: BaseException, timeout: float) -> str:
    """pyinfra's connect errors in the same plain words."""
    return connect_reason(str(error.args[0] if error.args else error) or type(error).__name__, timeout)


def with_key_advice(host: str, reason: str, known_hosts_file: str | None) -> str:
    """A changed host key is refused with the one line that says how to accept it."""
    return changed_key_reason(host, known_hosts_file) if reason.startswith(HOST_KEY_MISMATCH) else reason
