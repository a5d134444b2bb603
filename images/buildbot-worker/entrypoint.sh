#!/bin/sh
# Create (or refresh) the worker's buildbot.tac from the environment, then run the worker in the foreground.
# The tac reads the password from $BUILDBOT_WORKER_PASSWORD_FILE each time the worker starts: it is never in
# the environment of the worker, on a command line, or written into the tac.
set -eu
: "${BUILDBOT_MASTER:?set BUILDBOT_MASTER to the master's host:port}"
: "${BUILDBOT_WORKER_NAME:?set BUILDBOT_WORKER_NAME to this worker's name}"
dir="${BUILDBOT_WORKER_DIR:-/var/lib/buildbot/worker}"
password_file="${BUILDBOT_WORKER_PASSWORD_FILE:-/run/secrets/buildbot-worker-password}"
[ -r "$password_file" ] || { echo "archfleet-buildbot-worker: cannot read the password file $password_file" >&2; exit 2; }
host="${BUILDBOT_MASTER%:*}"
port="${BUILDBOT_MASTER##*:}"
case "$port" in ''|*[!0-9]*) echo "archfleet-buildbot-worker: BUILDBOT_MASTER must be host:port" >&2; exit 2 ;; esac

mkdir -p "$dir/info"
umask 077
# Values go into the tac through the environment of python3, which writes them as Python literals (repr).
ARCHFLEET_TAC_DIR="$dir" ARCHFLEET_TAC_HOST="$host" ARCHFLEET_TAC_PORT="$port" \
ARCHFLEET_TAC_NAME="$BUILDBOT_WORKER_NAME" ARCHFLEET_TAC_PASSWORD_FILE="$password_file" python3 - <<'PY'
import os

env = os.environ
tac = f'''# Written by archfleet-buildbot-worker at container start; the password is read from a file at startup.
from buildbot_worker.bot import Worker
from twisted.application import service

basedir = {env["ARCHFLEET_TAC_DIR"]!r}
with open({env["ARCHFLEET_TAC_PASSWORD_FILE"]!r}) as secret:
    passwd = secret.read().strip()

# note: this line is matched against to check that this is a worker
# directory; do not edit it.
application = service.Application('buildbot-worker')

s = Worker({env["ARCHFLEET_TAC_HOST"]!r}, {int(env["ARCHFLEET_TAC_PORT"])}, {env["ARCHFLEET_TAC_NAME"]!r}, passwd,
           basedir, 600, umask=0o22, maxdelay=300, numcpus=None, allow_shutdown=None, maxRetries=None,
           protocol='pb', useTls=0, delete_leftover_dirs=False, proxy_connection_string=None)
s.setServiceParent(application)
'''
path = os.path.join(env["ARCHFLEET_TAC_DIR"], "buildbot.tac")
with open(path + ".tmp", "w") as handle:
    handle.write(tac)
os.replace(path + ".tmp", path)
PY
umask 022
printf '%s\n' "${BUILDBOT_WORKER_ADMIN:-archfleet}" > "$dir/info/admin"
printf '%s\n' "${BUILDBOT_WORKER_HOST:-$(uname -sm)}" > "$dir/info/host"
rm -f "$dir/twistd.pid"
exec buildbot-worker start --nodaemon "$dir"
