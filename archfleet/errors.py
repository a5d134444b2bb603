"""The two kinds of failure the command line reports, each with its exit code."""

from __future__ import annotations


class ArchfleetError(Exception):
    """A failure reported as one line on stderr."""

    exit_code = 1


class InputError(ArchfleetError):
    """Bad input: an unknown option, a bad fleet file, a missing credential. Nothing was changed."""

    exit_code = 2


class OperationFailed(ArchfleetError):
    """An operation or a host failed."""

    exit_code = 1
