#!/bin/bash
# Register an ephemeral runner with the token from a mounted file, run it, deregister on stop.
set -euo pipefail
: "${RUNNER_URL:?set RUNNER_URL to https://github.com/OWNER[/REPO]}"
token_file="${RUNNER_TOKEN_FILE:-/run/secrets/github-runner-token}"
remove_token_file="${RUNNER_REMOVE_TOKEN_FILE:-$token_file}"
[ -r "$token_file" ] || { echo "archfleet-github-runner: cannot read the token file $token_file" >&2; exit 2; }

deregister() {
    # config.sh only takes the token as an argument; it is read from the file at the last moment.
    ./config.sh remove --token "$(cat "$remove_token_file")" || true
}

./config.sh --unattended --ephemeral --replace --url "$RUNNER_URL" --token "$(cat "$token_file")" \
    --name "${RUNNER_NAME:-$(hostname)}" ${RUNNER_LABELS:+--labels "$RUNNER_LABELS"} --work _work

trap 'kill -TERM "$runner" 2>/dev/null; wait "$runner" || true; deregister; exit 143' TERM INT
./run.sh &
runner=$!
wait "$runner"
