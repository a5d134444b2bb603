#!/bin/bash
# Stand-in for the GitHub Actions runner's run.sh (test only). Configured by config.sh (.runner, .credentials), or
# just-in-time from ACTIONS_RUNNER_INPUT_JITCONFIG (the base64 config the jitconfig endpoint returns). It long-polls
# the stand-in GitHub's job queue for a job whose labels are all among its own, runs the job's shell command,
# posts the exit code and output back and, when ephemeral (always with a JIT config), exits after that one job.
# It exits 1 when the service no longer knows the runner (it was removed).
set -uo pipefail
cd "$(dirname "$0")"
if [ -n "${ACTIONS_RUNNER_INPUT_JITCONFIG:-}" ]; then
    config=$(printf '%s' "$ACTIONS_RUNNER_INPUT_JITCONFIG" | base64 -d)
    unset ACTIONS_RUNNER_INPUT_JITCONFIG
    credential=$(printf '%s' "$config" | jq -r .credential)
    origin=$(printf '%s' "$config" | jq -r .origin)
    runner_id=$(printf '%s' "$config" | jq -r .runner_id)
    ephemeral=true
else
    [ -f .runner ] && [ -f .credentials ] || { echo "run.sh (stand-in): not configured" >&2; exit 1; }
    credential=$(cat .credentials)
    origin=$(jq -r .origin .runner) runner_id=$(jq -r .runner_id .runner) ephemeral=$(jq -r .ephemeral .runner)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# curl with `Authorization: Bearer CREDENTIAL` given on stdin; prints the HTTP status, the body goes to $work/body.
service() {
    printf 'header = "Authorization: Bearer %s"\n' "$credential" \
        | curl -sS -K - -o "$work/body" -w '%{http_code}' "$@"
}

echo "run.sh (stand-in): runner $runner_id listening for jobs"
while :; do
    status=$(service "$origin/_standin/actions/jobs/next?runner_id=$runner_id") || { sleep 1; continue; }
    case "$status" in
        204) continue ;;
        200) ;;
        401|404) echo "run.sh (stand-in): runner $runner_id is no longer registered" >&2; exit 1 ;;
        *) sleep 1; continue ;;
    esac
    job=$(jq -r .id "$work/body")
    echo "run.sh (stand-in): running job $job"
    bash -c "$(jq -r .command "$work/body")" > "$work/output" 2>&1
    code=$?
    jq -Rs --argjson code "$code" '{exit_code: $code, output: .}' "$work/output" > "$work/result"
    service -X POST -H 'Content-Type: application/json' --data-binary "@$work/result" \
        "$origin/_standin/actions/jobs/$job/result?runner_id=$runner_id" >/dev/null
    echo "run.sh (stand-in): job $job finished with exit code $code"
    if [ "$ephemeral" = true ]; then exit 0; fi
done
