"""Command text for running service containers. Pure: builds commands, runs nothing.

Each step of a rollout on a host is one fixed POSIX sh script; every value (container names, the image, the
`docker create` argv built from the fleet file) reaches it as a quoted positional argument, never spliced into the
script's text. A failing script prints its reason as a last stderr line ``archfleet-failure: REASON``.

- ``pull_images``: each image by digest, each under ``timeout``.
- ``switch_container``: stop the running container and keep it as ``<name>-previous``, create and start the new
  one, wait until it is healthy (or, without a health check, still running and not restarted after 3 s); on any
  failure print the new container's last log lines, remove it and put the previous one back (a failed stop or
  rename starts the old one where it is; a put-back that fails is part of the reason). A previous container
  left by an interrupted rollout is put back first, so the script repairs what it finds. The wait runs the
  declared health check itself while Docker's first one is still to come (see ``wait_ready``).
- ``rollback_container``: the new container is removed and the previous one runs again under its name.
- ``record_release``: a release's record and keep list, its history line, and retention: older records, the
  file versions and images only they used are removed (``RELEASES_READ`` reads them back).
- ``start_container``, ``remove_service``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyinfra.api import QuoteString, StringCommand

from archfleet.facts.service_reads import (
    DIGEST_LABEL,
    FILES_ROOT,
    SERVICE_LABEL,
    SPEC_LABEL,
    TAG_LABEL,
)
from archfleet.services.desired import DesiredContainer

LOG_LINES = 20
FAILURE_PREFIX = "archfleet-failure: "
SETTLE_SECONDS = 3
STOP_SECONDS = 10  # `docker stop -t`: the old container's grace before it is killed
POLLS_PER_SECOND = 2

# Shell functions every step script starts with.
#
# `wait_ready NAME SECONDS CHECK CHECK_SECONDS` returns 0 when NAME is healthy, or (CHECK empty: no health check)
# running and not restarted for SETTLE_SECONDS; else prints why and returns 1. It looks every 1/POLLS_PER_SECOND s
# (a `sleep` without fractions falls back to 1 s, which only makes the wait longer). Each look is `container_state`:
# the container's status, health, restart count and exit code, each by name through the docker CLI's `--format`
# (the engine's JSON is never cut by the shell, so nothing depends on the order of its keys). `exists` asks it too.
#
# While Docker still says `starting`, the wait also runs the declared check itself once a second (`docker exec`
# NAME /bin/sh -c CHECK under CHECK_SECONDS, as Docker runs a `--health-cmd`: even where the image sets a SHELL, the
# container's config has none, as `docker create` does not take the image's): its first pass proves it healthy.
# Docker 20.10 (Debian 12's) runs the first check one whole interval after the start (there is no start interval
# before Docker 25), so with Docker's default 30 s a rollout would otherwise wait 30 s per host. Only a
# pass counts: a failing own check never fails the wait, Docker's `unhealthy` (after the declared retries and start
# period) and the time bound still do, so what a rollout takes for a failure is what Docker says. A slow or hanging
# check cannot stretch the wait past SECONDS: the polls count time in steps of 1/POLLS_PER_SECOND s, which an own
# check can outlast, so before each one the wait reads the clock and gives the check what is left of SECONDS (at
# most its declared timeout); when nothing is left, the wait has run out.
PRELUDE = r"""
fail() { failure=$*; echo "archfleet-failure: $*" >&2; }
exists() { [ "$(container_state "$1")" != "missing missing 0 0" ]; }
status_of() { set -- $(container_state "$1"); echo "$1"; }
newline='
'
# `bounded SECONDS COMMAND...`: COMMAND under `timeout`; when it fails, $error says why in one line (docker's own
# first line, "timed out after S s", or the exit code).
bounded() {
  bounded_seconds=$1; shift
  error=$(timeout "$bounded_seconds" "$@" 2>&1 >/dev/null)
  bounded_code=$?
  [ "$bounded_code" = 0 ] && return 0
  error=${error%%"$newline"*}
  [ "$bounded_code" != 124 ] || error="timed out after $bounded_seconds s"
  [ -n "$error" ] || error="exit code $bounded_code"
  return 1
}
container_state() {
  # (for a missing container, docker inspect prints an empty line and fails: four words or none)
  set -- $(docker inspect --format '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} '\
'{{.RestartCount}} {{.State.ExitCode}}' "$1" 2>/dev/null)
  if [ "$#" = 4 ]; then echo "$1 $2 $3 $4"; else echo missing missing 0 0; fi
}
show_logs() {
  echo "$1: its last log lines:" >&2
  docker logs --tail LOG_LINES "$1" 2>&1 | sed 's/^/    | /' >&2
}
wait_ready() {
  ready_name=$1 ready_seconds=$2 ready_check=$3 ready_check_seconds=$4 i=0
  ready_deadline=$(($(date +%s) + ready_seconds))
  while [ "$i" -lt $((ready_seconds * POLLS_PER_SECOND)) ]; do
    i=$((i + 1))
    set -- $(container_state "$ready_name")
    case "$1 $2" in
      "running healthy") [ "$3" = 0 ] && return 0 ;;
      "running starting")
        if [ -n "$ready_check" ] && [ "$3" = 0 ] && [ $(((i - 1) % POLLS_PER_SECOND)) = 0 ]; then
          ready_left=$((ready_deadline - $(date +%s)))
          [ "$ready_left" -gt 0 ] || break
          [ "$ready_left" -lt "$ready_check_seconds" ] || ready_left=$ready_check_seconds
          if timeout "$ready_left" docker exec "$ready_name" /bin/sh -c "$ready_check" >/dev/null 2>&1; then
            return 0
          fi
        fi ;;
      "running none") if [ -z "$ready_check" ] && [ "$i" -gt SETTLE_POLLS ] && [ "$3" = 0 ]; then return 0; fi ;;
      "running unhealthy") fail "health check failed"; return 1 ;;
      missing*) fail "the container disappeared"; return 1 ;;
    esac
    if [ "$3" != 0 ]; then fail "the process exited (exit code $4) and was restarted"; return 1; fi
    case "$1" in
      exited|dead) fail "the process exited (exit code $4)"; return 1 ;;
    esac
    sleep POLL_SECONDS 2>/dev/null || sleep 1
  done
  fail "not healthy within $ready_seconds s"
  return 1
}
""".replace("LOG_LINES", str(LOG_LINES)).replace(
    "SETTLE_POLLS", str(SETTLE_SECONDS * POLLS_PER_SECOND)).replace("POLLS_PER_SECOND", str(POLLS_PER_SECOND)).replace(
    "POLL_SECONDS", f"{1 / POLLS_PER_SECOND:g}")

_PULL = PRELUDE + r"""
seconds=$1; shift
for image in "$@"; do
  # by digest: an image already on the host is the same image (and a rollback needs no registry for it)
  if docker image inspect "$image" >/dev/null 2>&1; then echo "held $image"; continue; fi
  timeout "$seconds" docker pull -q "$image" >/dev/null 2>/tmp/archfleet-pull.$$
  code=$?
  if [ "$code" = 124 ]; then rm -f /tmp/archfleet-pull.$$; fail "pull timed out after $seconds s ($image)"; exit 1; fi
  if [ "$code" != 0 ]; then
    reason=$(tail -n 1 /tmp/archfleet-pull.$$); rm -f /tmp/archfleet-pull.$$
    fail "pull failed: ${reason:-exit $code} ($image)"; exit 1
  fi
  rm -f /tmp/archfleet-pull.$$
  echo "pulled $image"
done
"""

# The switch. Once the old container has been stopped, every failure ends with it running again under its name and
# says so (``put_back``: kept as NAME-previous, it is renamed back and the new one removed; still under its name,
# because its stop or its rename failed, it is started where it is). When the put-back fails too, the reason line
# says that as well: ``REASON; put-back failed: WHY``. The stop, the renames, create, start and the removal of a
# leftover run under a time bound (``bounded``). SIGPIPE is ignored: a put-back runs to its end even when nobody
# reads the script's output any more (the rollout's connection gone). A leftover NAME-previous that cannot be
# removed stops the switch before anything is stopped.
_SWITCH = PRELUDE + r"""
name=$1 previous=$2 wait=$3 check=$4 check_seconds=$5 start_seconds=$6; shift 6
trap '' PIPE
old=none  # the old container: none, stopped (under its name) or kept (as $previous)
created=no  # the new one
put_back() {
  if [ "$old" = none ]; then
    [ "$created" = no ] || docker rm -f "$name" >/dev/null 2>&1
    exit 1
  fi
  if [ "$old" = kept ]; then
    docker rm -f "$name" >/dev/null 2>&1
    tries=1
    # (a `docker create` its time bound cut short may hold the name a moment longer)
    until bounded "$start_seconds" docker rename "$previous" "$name"; do
      [ "$tries" -lt 3 ] || { fail "$failure; put-back failed: could not rename $previous to $name: $error"; exit 1; }
      tries=$((tries + 1)); sleep 1; docker rm -f "$name" >/dev/null 2>&1
    done
  fi
  bounded "$start_seconds" docker start "$name" \
    || { fail "$failure; put-back failed: could not start $name again: $error"; exit 1; }
  status=$(status_of "$name")
  [ "$status" = running ] || { fail "$failure; put-back failed: $name is $status after its start"; exit 1; }
  if [ "$old" = kept ]; then echo "put the previous $name back" >&2; else echo "the old $name runs again" >&2; fi
  exit 1
}
if exists "$previous"; then
  if [ "$(status_of "$name")" = running ]; then
    bounded "$start_seconds" docker rm -f "$previous" \
      || { fail "could not remove the leftover $previous: $error"; exit 1; }
  else
    docker rm -f "$name" >/dev/null 2>&1
    bounded "$start_seconds" docker rename "$previous" "$name" \
      || { fail "could not put back $previous: $error"; exit 1; }
  fi
fi
if exists "$name"; then
  old=stopped
  bounded $((start_seconds + STOP_SECONDS)) docker stop -t STOP_SECONDS "$name" \
    || { fail "could not stop $name: $error"; put_back; }
  bounded "$start_seconds" docker rename "$name" "$previous" \
    || { fail "could not keep $name as $previous: $error"; put_back; }
  old=kept
fi
bounded "$start_seconds" "$@" || { fail "could not create the container: $error"; put_back; }
created=yes
bounded "$start_seconds" docker start "$name" || { show_logs "$name"; fail "could not start: $error"; put_back; }
wait_ready "$name" "$wait" "$check" "$check_seconds" || { show_logs "$name"; put_back; }
""".replace("STOP_SECONDS", str(STOP_SECONDS))

# The undo of a switch that stood (a later host failed) and a plan's `restore`: NAME-previous back under its name,
# running. As the switch: each docker command under a time bound (``bounded``) with docker's own error in the
# reason, SIGPIPE ignored (it runs to its end when the rollout's connection is gone).
_ROLLBACK = PRELUDE + r"""
name=$1 previous=$2 seconds=$3
trap '' PIPE
exists "$previous" || { fail "no $previous to put back"; exit 1; }
if exists "$name"; then
  bounded "$seconds" docker rm -f "$name" || { fail "could not remove $name to put back $previous: $error"; exit 1; }
fi
bounded "$seconds" docker rename "$previous" "$name" \
  || { fail "could not put back $previous: could not rename it to $name: $error"; exit 1; }
bounded "$seconds" docker start "$name" \
  || { fail "could not put back $previous: could not start $name: $error"; exit 1; }
status=$(status_of "$name")
[ "$status" = running ] || { fail "could not put back $previous: $name is $status after its start"; exit 1; }
"""

_START = PRELUDE + r"""
name=$1 wait=$2 check=$3 check_seconds=$4
docker start "$name" >/dev/null || { fail "could not start $name"; exit 1; }
if ! wait_ready "$name" "$wait" "$check" "$check_seconds"; then show_logs "$name"; exit 1; fi
"""

# A release's record and retention (archfleet.sync.releases). ID empty: no record, only the tidying. RETAIN empty:
# no record is removed. Each argument after the six values is "previous NAME" (a container removed first), a keep
# line of this release ("dir PATH", "image REPO@DIGEST") or "service NAME" (a service whose file versions are
# tidied). Records older than the newest RETAIN go, with their keep lists; then every file version of the named
# services that no retained keep list and no container's mount names is removed, and every image a removed release
# named that nothing retained names (`docker image rm` without -f: never an image a container uses).
_RELEASE = PRELUDE + r"""
root=$1 retain=$2 id=$3 record=$4 summary=$5 files_root=$6; shift 6
umask 077; export LC_ALL=C
mkdir -p "$root" && chmod 0700 "$root" || { fail "could not create $root"; exit 1; }
work=$(mktemp -d) || { fail "could not create a temporary directory"; exit 1; }
trap 'rm -rf "$work"' EXIT
: >"$work/keep"; : >"$work/dropped"; services=""
for line in "$@"; do
  case "$line" in
    "service "*) services="$services ${line#service }" ;;
    "previous "*) docker rm -f "${line#previous }" >/dev/null 2>&1 ;;
    *) printf '%s\n' "$line" >>"$work/keep" ;;
  esac
done
if [ -n "$id" ]; then
  { printf '%s\n' "$record" >"$root/$id.json.new" && cp "$work/keep" "$root/$id.keep.new" \
    && mv "$root/$id.keep.new" "$root/$id.keep" && mv "$root/$id.json.new" "$root/$id.json" \
    && printf '%s\n' "$summary" >>"$root/history.jsonl" && chmod 0600 "$root/history.jsonl"; } \
    || { fail "could not record release $id in $root"; exit 1; }
fi
if [ -n "$retain" ]; then
  # Oldest applied first: records history.jsonl does not name, then history's append order (its last line per
  # id). Not the id's order (a run's start time). The record just written is never dropped.
  ls "$root" | sed -n 's/\.json$//p' >"$work/records"
  { [ -f "$root/history.jsonl" ] && sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$root/history.jsonl"; } \
    | awk '{ last[$0] = NR } END { for (id in last) print last[id], id }' | sort -n | cut -d' ' -f2- >"$work/applied"
  { grep -vxF -f "$work/applied" "$work/records"; grep -xF -f "$work/records" "$work/applied"; } >"$work/order"
  count=$(grep -c . "$work/order")
  while read -r name; do
    [ "$count" -gt "$retain" ] || break
    [ "$name" = "$id" ] && continue
    cat "$root/$name.keep" >>"$work/dropped" 2>/dev/null
    rm -f "$root/$name.json" "$root/$name.keep"
    count=$((count - 1))
  done <"$work/order"
fi
for name in $(ls "$root" | grep '\.keep$'); do cat "$root/$name" >>"$work/keep"; done
containers=$(docker ps -aq)
if [ -n "$containers" ]; then
  docker inspect --format '{{range .Mounts}}{{println .Source}}{{end}}' $containers 2>/dev/null \
    | sed -n 's|^\(.*\)/[^/]*$|dir \1|p' >>"$work/keep"
fi
for service in $services; do
  for version in "$files_root/$service"/*/; do
    [ -d "$version" ] || continue
    grep -qxF "dir ${version%/}" "$work/keep" || rm -rf "$version"
  done
done
sort -u "$work/dropped" | while read -r kind reference; do
  [ "$kind" = image ] || continue
  grep -qxF "image $reference" "$work/keep" || docker image rm "$reference" >/dev/null 2>&1 || true
done
true
"""

# What `archfleet releases` and `archfleet rollback` read on a host (archfleet.sync.releases.parse_releases_read):
# every retained record (one JSON line each), the history, archfleet's containers with their labels, the images
# the engine holds by digest and the file versions under FILES_ROOT.
RELEASES_READ = (
    "d=/var/lib/archfleet/releases; "
    "for name in $(ls \"$d\" 2>/dev/null | grep '\\.json$'); do printf 'record='; tr -d '\\n' <\"$d/$name\"; echo; "
    "done; "
    "[ -f \"$d/history.jsonl\" ] && tail -n 1000 \"$d/history.jsonl\" | sed 's/^/history=/'; "
    f"docker ps -a --filter label={SERVICE_LABEL} --format 'running={{{{.Names}}}} {{{{.State}}}} "
    f"{{{{.Label \"{SERVICE_LABEL}\"}}}} {{{{.Label \"{DIGEST_LABEL}\"}}}} {{{{.Label \"{SPEC_LABEL}\"}}}}' "
    "2>/dev/null; "
    "docker image ls --digests --format 'image={{.Repository}}@{{.Digest}}' 2>/dev/null; "
    f"find {FILES_ROOT} -mindepth 2 -maxdepth 2 -type d -printf 'dir=%p\\n' 2>/dev/null; true"
)


def _script(text: str, label: str, args: Sequence[str]) -> StringCommand:
    return StringCommand("sh", "-c", QuoteString(text), label, *(QuoteString(a) for a in args))


def create_argv(desired: DesiredContainer) -> list[str]:
    labels = {
        SERVICE_LABEL: desired.service,
        SPEC_LABEL: desired.spec_hash,
        DIGEST_LABEL: desired.digest,
        TAG_LABEL: desired.tag,
    }
    argv = ["docker", "create", "--name", desired.name]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    return [*argv, *desired.create_args, desired.image, *desired.command]


def pull_images(images: Sequence[str], timeout: int) -> StringCommand:
    """Pull each image the host does not hold (by digest); prints ``held IMAGE`` or ``pulled IMAGE`` per image."""
    return _script(_PULL, "archfleet-pull", [str(timeout), *images])


def switch_container(desired: DesiredContainer, start_timeout: int, health_timeout: int) -> StringCommand:
    """``start_timeout`` bounds `docker create` and `docker start`; the wait for health is the service's own
    (interval, retries, start period), at most ``health_timeout``."""
    wait = min(desired.wait_seconds, health_timeout)
    return _script(_SWITCH, "archfleet-switch", [
        desired.name, desired.previous_name, str(wait), *_check_args(desired), str(start_timeout),
        *create_argv(desired),
    ])


def _check_args(desired: DesiredContainer) -> list[str]:
    """``wait_ready``'s CHECK and CHECK_SECONDS: the declared health check's command and timeout, or "" and 0."""
    check = desired.healthcheck
    return [check.command, str(check.timeout)] if check else ["", "0"]


def rollback_container(name: str, previous: str, start_timeout: int) -> StringCommand:
    """``previous`` back under ``name``, running; ``start_timeout`` bounds each docker command."""
    return _script(_ROLLBACK, "archfleet-rollback", [name, previous, str(start_timeout)])


def start_container(desired: DesiredContainer, health_timeout: int) -> StringCommand:
    return _script(_START, "archfleet-start",
                   [desired.name, str(min(desired.wait_seconds, health_timeout)), *_check_args(desired)])


def record_release(root: str, retain: int | None, release_id: str, record: str, summary: str,
                   keep: Sequence[str], services: Sequence[str], previous: Sequence[str] = ()) -> StringCommand:
    """Write a release's record (``release_id`` empty: none) and keep list, append its summary to the history,
    then tidy: records older than the newest ``retain`` (None: none removed), file versions of ``services`` and
    images nothing retained uses (``_RELEASE``). ``keep``: this release's keep lines; ``previous``: containers
    removed first (those a rollout kept)."""
    return _script(_RELEASE, "archfleet-release", [
        root, "" if retain is None else str(retain), release_id, record, summary, FILES_ROOT,
        *(f"previous {name}" for name in previous), *keep, *(f"service {name}" for name in services),
    ])


def remove_service(container: str, service: str) -> StringCommand:
    return StringCommand(
        "docker", "rm", "-f", QuoteString(container), ">/dev/null", "&&",
        "rm", "-rf", QuoteString(f"{FILES_ROOT}/{service}"),
    )


def remove_service_files(service: str) -> StringCommand:
    return StringCommand("rm", "-rf", QuoteString(f"{FILES_ROOT}/{service}"))


def remove_container(container: str) -> StringCommand:
    return StringCommand("docker", "rm", "-f", QuoteString(container), ">/dev/null")


def failure_reason(stderr_lines: Sequence[str], default: str) -> str:
    """The reason a step script gave (its last ``archfleet-failure:`` line), else ``default``."""
    for line in reversed(stderr_lines):
        if line.startswith(FAILURE_PREFIX):
            return line[len(FAILURE_PREFIX):].strip()
    return default
