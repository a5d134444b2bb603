"""Command text that reaches into a service's container on a host: its log (``archfleet logs``) and a command run
inside it (``archfleet exec``). Pure: each function returns the command line a host's shell runs, and runs nothing.

Each is one fixed POSIX sh script. The container's name and every word the user gave (``--since``, ``--tail``, the
command of ``exec``) reach it as quoted positional arguments (``set -- ...`` written by ``shlex.join``), never
spliced into its text, so each word is read by one shell, once, and arrives as it was typed. A container that is not
there (for ``exec``: not running) is refused before ``docker logs`` or ``docker exec`` runs: the script prints
``archfleet-failure: REASON`` as its last stderr line and exits ``REFUSED``.

``docker logs`` writes the container's stdout and stderr to its own two streams; the log scripts join them
(``2>&1``) on the host, so a host's lines arrive in the order the container wrote them, and whatever else reaches
the ssh's stderr is the script's refusal, sudo's or ssh's own complaint.
"""

from __future__ import annotations

import datetime
import re
import shlex
from collections.abc import Sequence

from archfleet.errors import InputError

FAILURE_PREFIX = "archfleet-failure: "  # the last stderr line of a refusal (as the rollout's step scripts say it)
REFUSED = 125  # the exit code of a refusal (docker's own code for "the docker command itself failed")

# $1: the container. Its state, or the refusal: "no container NAME", or what docker said (the engine is down).
_STATE = (
    'c=$1; shift; '
    'if ! state=$(docker container inspect --format "{{.State.Status}}" "$c" 2>&1); then '
    'case $state in *"No such"*) echo "archfleet-failure: no container $c" >&2 ;; '
    '*) echo "archfleet-failure: $(printf "%s\\n" "$state" | tail -n 1)" >&2 ;; esac; '
    f'exit {REFUSED}; fi; '
)

# $@ after the container: docker logs' own options (--tail N, --since T).
LOGS = _STATE + 'exec docker logs "$@" "$c" 2>&1'

# The same, following: `docker logs --follow` runs until the container stops, or until the controller goes away.
# ssh does not signal a remote command when its client ends, so the script watches its stdin (ssh's, which the
# controller holds open and never writes): when that closes, the follow is stopped, and no `docker logs` is left
# behind on the host. (An asynchronous command's stdin is /dev/null unless it is named: hence fd 3.)
LOGS_FOLLOW = _STATE + (
    'docker logs --follow "$@" "$c" 2>&1 & follower=$!; '
    'exec 3<&0; { cat <&3 >/dev/null 2>&1; kill "$follower" 2>/dev/null; } >/dev/null 2>&1 & '
    'wait "$follower"'
)

# $@ after the container: --interactive=BOOL --tty=BOOL, then the command's words.
EXEC = _STATE + (
    f'[ "$state" = running ] || {{ echo "archfleet-failure: container $c is $state" >&2; exit {REFUSED}; }}; '
    'interactive=$1; tty=$2; shift 2; '
    'exec docker exec --interactive="$interactive" --tty="$tty" "$c" "$@"'
)


def with_arguments(script: str, arguments: Sequence[str]) -> str:
    """``script`` run with ``arguments`` as its positional parameters, each quoted once."""
    return f"set -- {shlex.join(arguments)}; {script}"


def container_logs(container: str, *, tail: int | None, since: str | None, follow: bool) -> str:
    """The container's log (stdout and stderr, joined in order): its last ``tail`` lines (None: all), from
    ``since`` (what ``docker logs --since`` takes), following it when ``follow``."""
    options = [*(["--tail", str(tail)] if tail is not None else []), *(["--since", since] if since else [])]
    return with_arguments(LOGS_FOLLOW if follow else LOGS, [container, *options])


def container_exec(container: str, command: Sequence[str], *, interactive: bool = False, tty: bool = False) -> str:
    """``command`` (argv: its words as given) run inside the running ``container``; stdin attached when
    ``interactive``, a terminal when ``tty``."""
    flags = [f"{interactive}".lower(), f"{tty}".lower()]
    return with_arguments(EXEC, [container, *flags, *command])


# What `docker logs --since` takes (docker's api/types/time.GetTimestamp): a Go duration back from the host's
# clock ("10m", "1h30m", "1.5h"), a Unix time ("1733625600", "1733625600.5"), or an RFC 3339 date or time.
GO_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
UNIX_TIME = re.compile(r"\d+(?:\.\d{1,9})?")
RFC3339_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}"  # a date, then perhaps an hour, minutes, seconds and a zone
                          r"(?:[Tt]\d{2}(?::\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?)?(?:[Zz]|[+-]\d{2}:\d{2})?")


def since_argument(text: str) -> str:
    """``--since`` as ``docker logs --since`` reads it, or an InputError. A duration or a Unix time goes as given
    (a duration counts back from the host's clock, as docker does); a date or time becomes a Unix time here, a
    zone-less one in this machine's time zone (on the host, docker would read it in the host's zone)."""
    value = text.strip()
    if GO_DURATION.fullmatch(value) or UNIX_TIME.fullmatch(value):
        return value
    if RFC3339_LIKE.fullmatch(value):
        whole, _, fraction = value.upper().replace("Z", "+00:00").partition(".")
        zone = ""
        if fraction:
            digits = re.match(r"\d+", fraction)
            assert digits is not None
            zone, fraction = fraction[digits.end():], digits.group()
        try:
            moment = datetime.datetime.fromisoformat(whole + zone)
        except ValueError as error:
            raise InputError(f"--since: {text!r}: {error}") from None
        if moment.tzinfo is None:
            moment = moment.astimezone()  # this machine's zone
        return f"{int(moment.timestamp())}.{(fraction or '0').ljust(9, '0')[:9]}"
    raise InputError(f"--since: {text!r} is neither a duration (10m, 1h30m), a Unix time nor an RFC 3339 date or "
                     "time (2026-12-08, 2026-12-08T02:30:00Z)")
