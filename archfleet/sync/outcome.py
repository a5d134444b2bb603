"""What a step on one host came to (pure): ok, or failed with a one-line reason."""

from __future__ import annotations

from dataclasses import dataclass, field

from archfleet.ssh import connect_failure


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


def connect_error_reason(error: BaseException, timeout: float) -> str:
    """pyinfra's connect errors in a few plain words (connection refused, host key mismatch, ...); a connection
    that did not complete in time says the bound."""
    reason = connect_failure(str(error.args[0] if error.args else error) or type(error).__name__)
    if reason == "connect timed out":
        return f"connect timed out after {timeout:g} s"
    if reason.startswith("no SSH banner"):
        return f"connect timed out after {timeout:g} s ({reason})"
    return reason
