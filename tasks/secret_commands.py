"""Command text for reading a service's secret back from a host (``archfleet secrets pull``). Pure: builds the
command, runs nothing.

One fixed POSIX sh script; every value (the files' root, each container, mount, service and secret name) reaches it
as a quoted positional argument, never spliced into its text. For each (container, mount, service, name) it prints
one line ``secret=SERVICE NAME HOW PATH BASE64`` where HOW says how the file was found: ``mount`` (the container
mounts it at MOUNT: the version the service runs) or ``only`` (no container mounts it, and the host holds exactly one
version of it); or ``secret=SERVICE NAME none REASON``. The value is base64 (one line, any bytes); it goes to the
caller's stdout only, never to stderr or a log.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from archfleet.facts.service_reads import FILES_ROOT

READ_SECRETS = r"""
root=$1; shift
tab=$(printf '\t')
while [ $# -ge 4 ]; do
  c=$1; m=$2; s=$3; n=$4; shift 4
  src=$(docker inspect --format '{{range .Mounts}}{{.Destination}}{{"\t"}}{{.Source}}{{"\n"}}{{end}}' "$c" \
        2>/dev/null | while IFS=$tab read -r d p; do if [ "$d" = "$m" ]; then printf '%s\n' "$p"; break; fi; done)
  how=mount
  if [ -z "$src" ]; then
    how=only; count=0
    for f in "$root/$s"/*/"$n"; do if [ -f "$f" ]; then count=$((count + 1)); src=$f; fi; done
    if [ "$count" -ne 1 ]; then
      echo "secret=$s $n none no container $c mounts it and the host holds $count version(s) of it"; continue
    fi
  fi
  if value=$(base64 -w0 < "$src"); then echo "secret=$s $n $how $src $value"
  else echo "secret=$s $n none cannot read $src"; fi
done
"""


def read_secrets(targets: Sequence[tuple[str, str, str, str]]) -> str:
    """The command that reads each (container, mount, service, secret name) on a host, as the text a host's
    ``sh -c`` runs (archfleet.sync.read.remote_command wraps it, through sudo where the host's data says)."""
    args = [FILES_ROOT, *(value for target in targets for value in target)]
    return " ".join(["sh", "-c", shlex.quote(READ_SECRETS), "archfleet-secret-read", *map(shlex.quote, args)])
