#!/bin/bash
# Stand-in for the GitHub Actions runner's config.sh (test only; the real release cannot be downloaded here).
# It keeps the interface archfleet's entrypoint relies on: `config.sh --unattended --url URL --name NAME
# --labels L1,L2 [--ephemeral] [--replace] [--disableupdate] [--work DIR]` and `config.sh remove`, with any input also
# read from ACTIONS_RUNNER_INPUT_<NAME> (TOKEN, URL, NAME, LABELS) as the real runner does. It registers with the
# stand-in GitHub (tests/standins/github_api.py) at ORIGIN/api/v3/actions/runner-registration, the
# GitHub Enterprise Server shape of the URL, and writes .runner and .credentials (0600) beside itself.
set -euo pipefail
cd "$(dirname "$0")"
command=configure
if [ "${1:-}" = remove ]; then command=remove; shift; fi
token="${ACTIONS_RUNNER_INPUT_TOKEN:-}" url="${ACTIONS_RUNNER_INPUT_URL:-}"
name="${ACTIONS_RUNNER_INPUT_NAME:-$(hostname)}"
labels="${ACTIONS_RUNNER_INPUT_LABELS:-}" ephemeral=false
while [ $# -gt 0 ]; do
    case "$1" in
        --unattended|--replace|--disableupdate|--no-default-labels) ;;
        --ephemeral) ephemeral=true ;;
        --url) url=$2; shift ;;
        --name) name=$2; shift ;;
        --labels) labels=$2; shift ;;
        --work) shift ;;
        --token) token=$2; shift ;;
        *) echo "config.sh (stand-in): unknown option $1" >&2; exit 1 ;;
    esac
    shift
done
[ -n "$token" ] || { echo "config.sh (stand-in): no token (--token or ACTIONS_RUNNER_INPUT_TOKEN)" >&2; exit 1; }

# POST a JSON body with `Authorization: RemoteAuth TOKEN`; the header goes to curl on stdin, never on its argv.
registration() {
    printf 'header = "Authorization: RemoteAuth %s"\n' "$token" \
        | curl -fsS -K - -X "$1" -H 'Content-Type: application/json' --data-binary "$2" \
            "$origin/api/v3/actions/runner-registration"
}

if [ "$command" = remove ]; then
    [ -f .runner ] || { echo "config.sh (stand-in): not configured" >&2; exit 1; }
    origin=$(jq -r .origin .runner)
    registration DELETE "$(jq -c '{runner_id}' .runner)" >/dev/null
    rm -f .runner .credentials
    echo "config.sh (stand-in): runner removed"
    exit 0
fi
[ -n "$url" ] || { echo "config.sh (stand-in): no --url" >&2; exit 1; }
[ ! -f .runner ] || { echo "config.sh (stand-in): already configured; run config.sh remove first" >&2; exit 1; }
origin=$(printf '%s' "$url" | sed -E 's#^(https?://[^/]+).*#\1#')
body=$(jq -nc --arg url "$url" --arg name "$name" --arg labels "$labels" --argjson ephemeral "$ephemeral" \
    '{url: $url, runner_event: "register", name: $name, ephemeral: $ephemeral,
      labels: ($labels | split(",") | map(select(. != "")))}')
answer=$(registration POST "$body")
(umask 077 && printf '%s' "$answer" | jq -r .credential > .credentials)
printf '%s' "$answer" | jq --arg origin "$origin" --argjson ephemeral "$ephemeral" \
    '{runner_id, name, labels, origin: $origin, ephemeral: $ephemeral}' > .runner
echo "config.sh (stand-in): registered runner $(jq -r .runner_id .runner) as $name" \
    "($(jq -r '.labels | join(",")' .runner))"
