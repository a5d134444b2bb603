"""The two kinds of failure the command line reports, each with its exit code."""

from __future__ import annotations

from pyinfra.api.exceptions import PyinfraError


class ArchfleetError(PyinfraError):
    """A failure reported as one line on stderr (by `archfleet`, and by pyinfra when raised in a deploy)."""

    exit_code = 1


class InputError(ArchfleetError):
    """Bad input: an unknown option, a bad fleet file, a missing credential. Nothing was changed."""

    exit_code = 2


class OperationFailed(ArchfleetError):
    """An operation or a host failed."""

    exit_code = 1
