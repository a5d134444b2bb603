"""The two kinds of failure the command line reports, each with its exit code."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING


def _error_base() -> type[Exception]:
    """Under the pyinfra CLI (a deploy or inventory file of this project run by ``pyinfra``, which imports
    ``pyinfra_cli`` before any of them) archfleet's errors are pyinfra's own errors, which it reports as one line
    instead of a traceback and as a failed host during execution. Everywhere else (archfleet's own command line,
    which imports pyinfra only when a host must change) they are plain exceptions, so importing this module costs
    nothing."""
    if "pyinfra_cli" in sys.modules:
        from pyinfra.api.exceptions import PyinfraError

        return PyinfraError
    return Exception


if TYPE_CHECKING:
    _Base = Exception
else:
    _Base = _error_base()


class ArchfleetError(_Base):
    """A failure reported as one line on stderr (by `archfleet`, and by pyinfra when raised in a deploy)."""

    exit_code = 1


class InputError(ArchfleetError):
    """Bad input: an unknown option, a bad fleet file, a missing credential. Nothing was changed."""

    exit_code = 2


class OperationFailed(ArchfleetError):
    """An operation or a host failed."""

    exit_code = 1
