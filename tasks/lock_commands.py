"""Command text of the fleet lock (docs/lock.md), and the pure parser of what it prints. Pure: builds commands,
runs nothing.

A host's lock is one root-only file, ``/var/lib/archfleet/lock`` (its directory 0700), made atomically: the
record is written to a file of its own first, then hard-linked to the lock's name (``ln`` fails when the name
exists, so two takers cannot both win and nobody ever reads half a record). It holds one ``key=value`` line each:

    token=20261208T023512Z-3fa9     the run's id (archfleet.operator.RunInfo.id): who may release it
    holder=alice@mac                who runs it (user@controller)
    since=1796696112                when it was taken (the host's clock, epoch seconds)
    command=sync                    what runs
    message=v2ray 1.2               the operator's --message (one line)
    expires=1796703372              when the holder is deemed gone (the host's clock)
    boot_id=...                     the host's boot id then: a reboot since means the holder is gone

Each script is fixed text; every value reaches it as a quoted positional argument. Every line a script prints
starts with ``lock_``, so it can share its output with another read (the sync's ServicesState read, whose parser
ignores keys it does not know): the record's lines as ``lock_<key>=``, and ``lock_state=``, ``lock_now=`` (the
host's clock) and ``lock_current_boot=``.

- ``take_lock``: ``lock_state=taken`` (it was free), ``reentered`` (it is already this token's) or ``held`` (with
  the holder's record); a ``then`` command runs after the lock is taken or reentered, in the same command.
- ``release_lock``: removes the lock only when it holds this token (``released``, else ``not_held``).
- ``read_lock``: ``free`` or ``held`` with the record.
- ``break_lock``: removes the lock only when it still holds the token that was read and shown (``broken``, else
  ``not_held``): a lock taken since is never broken unseen.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api import QuoteString, StringCommand

LOCK_DIRECTORY = "/var/lib/archfleet"
LOCK_PATH = f"{LOCK_DIRECTORY}/lock"
RECORD_KEYS = ("token", "holder", "since", "command", "message", "expires", "boot_id")

_PRELUDE = r"""
fail() { echo "archfleet-failure: $*" >&2; }
dir=DIRECTORY lock=DIRECTORY/lock
umask 077
now=$(date +%s)
current_boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
echo "lock_now=$now"; echo "lock_current_boot=$current_boot"
token_of() { sed -n 's/^token=//p' "$lock" 2>/dev/null; }
show() { echo "lock_state=$1"; sed 's/^/lock_/' "$lock" 2>/dev/null; }
"""

_TAKE = _PRELUDE + r"""
token=$1 holder=$2 command=$3 message=$4 seconds=$5 then=$6
mkdir -p "$dir" && chmod 0700 "$dir" || { fail "could not create $dir"; exit 1; }
record="$dir/lock.$$"
printf 'token=%s\nholder=%s\nsince=%s\ncommand=%s\nmessage=%s\nexpires=%s\nboot_id=%s\n' "$token" "$holder" \
  "$now" "$command" "$message" "$((now + seconds))" "$current_boot" >"$record" || {
  rm -f "$record"; fail "could not write $record"; exit 1; }
state=""
for attempt in 1 2 3; do
  if ln "$record" "$lock" 2>/dev/null; then state=taken; break; fi
  if [ -f "$lock" ]; then
    # a lock whose record cannot be read yet is impossible: it is linked whole
    if [ "$(token_of)" = "$token" ]; then state=reentered; else state=held; fi
    break
  fi
  # released between the link and the look: try again
done
rm -f "$record"
[ -n "$state" ] || { fail "could not take $lock"; exit 1; }
if [ "$state" = held ]; then show held; exit 0; fi
echo "lock_state=$state"
[ -z "$then" ] || exec sh -c "$then"
"""

_REMOVE_IF_TOKEN = _PRELUDE + r"""
token=$1 done_state=$2
if [ -f "$lock" ] && [ "$(token_of)" = "$token" ]; then
  rm -f "$lock" || { fail "could not remove $lock"; exit 1; }
  echo "lock_state=$done_state"
else
  show not_held
fi
"""

_READ = _PRELUDE + r"""
if [ -f "$lock" ]; then show held; else echo "lock_state=free"; fi
"""


def _script(text: str, label: str, *args: str) -> StringCommand:
    script = text.replace("DIRECTORY", LOCK_DIRECTORY)
    return StringCommand("sh", "-c", QuoteString(script), label, *(QuoteString(a) for a in args))


def one_line(text: str | None) -> str:
    """A value of the record on one line (a --message may hold newlines; the record holds one line per key)."""
    return " ".join((text or "").split())


def take_lock(token: str, holder: str, command: str, message: str | None, expires_after: float,
              then: str | None = None) -> StringCommand:
    """Take the host's lock for ``token`` (or find it already ``token``'s), deemed gone ``expires_after`` seconds
    from now on the host's clock; ``then`` (a read) runs right after, in the same command, only when it is ours."""
    return _script(_TAKE, "archfleet-lock-take", one_line(token), one_line(holder), one_line(command),
                   one_line(message), str(max(1, int(expires_after))), then or "")


def release_lock(token: str) -> StringCommand:
    """Remove the host's lock if ``token`` holds it; else leave it (someone else's, or already gone)."""
    return _script(_REMOVE_IF_TOKEN, "archfleet-lock-release", one_line(token), "released")


def read_lock() -> StringCommand:
    return _script(_READ, "archfleet-lock-read")


def break_lock(token: str) -> StringCommand:
    """Remove the lock that was read and shown (held by ``token``); a lock taken since then stays."""
    return _script(_REMOVE_IF_TOKEN, "archfleet-lock-break", one_line(token), "broken")


@dataclass(frozen=True)
class HostLock:
    """What a lock script printed about one host's lock."""

    state: str  # free, held, taken, reentered, released, broken, not_held
    record: dict[str, str]  # the holder's record (RECORD_KEYS), when a lock was there
    now: int | None  # the host's clock when it was read
    current_boot: str

    def number(self, key: str) -> int | None:
        value = self.record.get(key, "")
        return int(value) if value.isdigit() else None

    @property
    def age(self) -> int | None:
        since = self.number("since")
        return None if since is None or self.now is None else max(0, self.now - since)

    @property
    def stale(self) -> str | None:
        """Why the holder is deemed gone ("host rebooted", "expired"), None while it is live."""
        boot = self.record.get("boot_id", "")
        if boot and self.current_boot and "unknown" not in (boot, self.current_boot) and boot != self.current_boot:
            return "host rebooted"
        expires = self.number("expires")
        if expires is not None and self.now is not None and self.now >= expires:
            return "expired"
        return None

    def holder(self) -> str:
        """``alice@mac (sync, 14 s ago: "v2ray 1.2")``."""
        age = self.age
        what = f"{self.record.get('command') or '?'}, {how_long(age) + ' ago' if age is not None else 'age unknown'}"
        message = self.record.get("message")
        if message:
            what += f': "{message}"'
        return f"{self.record.get('holder') or '?'} ({what})"

    def as_json(self) -> dict[str, object]:
        return {"state": "held" if self.record else "free", "holder": self.record.get("holder"),
                "command": self.record.get("command"), "message": self.record.get("message") or None,
                "token": self.record.get("token"), "age_seconds": self.age, "expires": self.number("expires"),
                "host_clock": self.now, "stale": self.stale}


def how_long(seconds: int) -> str:
    """``14 s``, ``3 min``, ``2 h 5 min``, ``3 d``."""
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{seconds // 86400} d"


def parse_lock(lines: list[str]) -> HostLock | None:
    """The ``lock_`` lines of a lock script's output (other lines are ignored); None when there are none."""
    state, record, now, boot = "", {}, None, ""
    for line in lines:
        if not line.startswith("lock_"):
            continue
        key, _, value = line[len("lock_"):].partition("=")
        if key == "state":
            state = value.strip()
        elif key == "now":
            now = int(value) if value.strip().isdigit() else None
        elif key == "current_boot":
            boot = value.strip()
        elif key in RECORD_KEYS:
            record[key] = value
    if not state:
        return None
    return HostLock(state, record, now, boot)
