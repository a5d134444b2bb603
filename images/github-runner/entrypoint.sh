#!/bin/bash
# archfleet GitHub Actions runner: at every container start, mint a short-lived registration token through GitHub's
# REST API from the credential in a mounted secret file, register (the token reaches config.sh only through its
# environment, ACTIONS_RUNNER_INPUT_TOKEN, never its argv), run, and deregister with a removal token on SIGTERM.
# Interface: see the Dockerfile's header.
#
# Two users. This script runs as root: it alone reads the credential (a root-only file, 0400 0:0) and talks to the
# REST API with it. Everything of the runner (config.sh, run.sh, and so every job) runs as RUNNER_USER through
# setpriv: its own uid and gid, no capabilities (bounding set emptied) and no_new_privs, so no setuid program
# (sudo, su) and no file capability can bring a job back to root or to the credential's file.
set -euo pipefail
log() { echo "archfleet-github-runner: $*" >&2; }
fail() { log "$*"; exit 2; }

[ "$(id -u)" = 0 ] || fail "the entrypoint runs as root (it reads the credential, then runs the runner as" \
    "${RUNNER_USER:-runner}): remove \`user:\` from the service, or USER from a derived image"
runner_user="${RUNNER_USER:-runner}"  # a user name, or UID:GID
case "$runner_user" in
    *:*) runner_uid=${runner_user%%:*} runner_gid=${runner_user#*:} groups_option=--clear-groups ;;
    *) runner_uid=$(id -u "$runner_user" 2>/dev/null) && runner_gid=$(id -g "$runner_user") \
           || fail "no user $runner_user in the image (RUNNER_USER)"
       groups_option=--init-groups ;;
esac
case "$runner_uid:$runner_gid" in
    0:*|*:0|*[!0-9:]*|:*|*:) fail "RUNNER_USER=$runner_user: the runner needs a user and group of its own, not root" ;;
esac
runner_home=$(getent passwd "$runner_uid" | cut -d: -f6) || true
runner_name=$(getent passwd "$runner_uid" | cut -d: -f1) || true
# "${as_runner[@]}" COMMAND...: COMMAND as the runner's user, never able to regain a privilege (see above). A chain
# of execs: in the background, $! is COMMAND itself.
as_runner=(env "HOME=${runner_home:-/nonexistent}" "USER=${runner_name:-$runner_uid}"
           "LOGNAME=${runner_name:-$runner_uid}"
           setpriv --reuid="$runner_uid" --regid="$runner_gid" "$groups_option" --inh-caps=-all --bounding-set=-all
           --no-new-privs --)

: "${GITHUB_URL:?set GITHUB_URL to the repository or organisation, https://github.com/OWNER[/REPO]}"
api="${GITHUB_API_URL:-https://api.github.com}"
api="${api%/}"
owner_repo="${GITHUB_URL#*://*/}"
owner_repo="${owner_repo%/}"
case "$owner_repo" in
    */*/*|"" | *://*) fail "GITHUB_URL $GITHUB_URL is not https://HOST/OWNER or https://HOST/OWNER/REPO" ;;
    */*) scope="repos/$owner_repo" ;;
    *) scope="orgs/$owner_repo" ;;
esac
case "$(uname -m)" in
    x86_64) arch_label=X64 ;;
    aarch64|arm64) arch_label=ARM64 ;;
    armv7l|armv6l) arch_label=ARM ;;
    *) fail "no GitHub Actions runner label for $(uname -m)" ;;
esac
labels="self-hosted,linux,$arch_label${RUNNER_LABELS:+,$RUNNER_LABELS}"
name="${RUNNER_NAME:-$(hostname)}"
ephemeral="${RUNNER_EPHEMERAL:-true}"
mode="${RUNNER_REGISTRATION:-token}"  # token: registration token + config.sh; jit: a JIT runner config
case "$ephemeral:$mode" in
    true:token|false:token|true:jit) ;;
    *) fail "RUNNER_EPHEMERAL=$ephemeral with RUNNER_REGISTRATION=$mode: expected true|false and token|jit" \
            "(jit runners are ephemeral)" ;;
esac

# The credential's file must be readable here (by root: the secret mount's default owner), checked before any request.
if [ -n "${GITHUB_APP_ID:-}" ]; then
    app_key_file="${GITHUB_APP_KEY_FILE:-/run/secrets/github-app-key}"
    [ -r "$app_key_file" ] || fail "cannot read the GitHub App key $app_key_file (is the secret mounted there?)"
    [ -n "${GITHUB_APP_INSTALLATION_ID:-}" ] || fail "set GITHUB_APP_INSTALLATION_ID with GITHUB_APP_ID"
else
    token_file="${GITHUB_TOKEN_FILE:-/run/secrets/github-token}"
    [ -r "$token_file" ] || fail "cannot read the token file $token_file (is the secret mounted there?)"
fi

# A curl with `Authorization: Bearer TOKEN`: the header reaches curl on stdin (-K -), never on its argv.
bearer_curl() {
    local token=$1
    shift
    printf 'header = "Authorization: Bearer %s"\n' "$token" \
        | curl -fsS -K - -H 'Accept: application/vnd.github+json' -H 'X-GitHub-Api-Version: 2022-11-28' "$@"
}

base64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# The credential for the REST API: a fine-grained token from a file, or a GitHub App installation token minted
# with a JWT (RS256, signed with the App's private key) that lives ten minutes.
api_token() {
    if [ -n "${GITHUB_APP_ID:-}" ]; then
        local now header payload jwt
        now=$(date +%s)
        header=$(printf '{"alg":"RS256","typ":"JWT"}' | base64url)
        payload=$(printf '{"iat":%d,"exp":%d,"iss":"%s"}' $((now - 60)) $((now + 540)) "$GITHUB_APP_ID" | base64url)
        jwt="$header.$payload.$(printf '%s.%s' "$header" "$payload" \
            | openssl dgst -sha256 -sign "$app_key_file" -binary | base64url)"
        bearer_curl "$jwt" -X POST "$api/app/installations/$GITHUB_APP_INSTALLATION_ID/access_tokens" | jq -er .token
    else
        tr -d ' \r\n' < "$token_file"
    fi
}

mint() {  # registration-token | remove-token
    local credential
    credential=$(api_token) || { log "no credential for the REST API (see above)"; return 1; }
    bearer_curl "$credential" -X POST "$api/$scope/actions/runners/$1" | jq -er .token \
        || { log "could not mint a $1 at $api/$scope (see above)"; return 1; }
}

jit_runner_id=
deregister() {
    if [ -n "$jit_runner_id" ]; then
        local credential
        credential=$(api_token) || return 1
        bearer_curl "$credential" -X DELETE "$api/$scope/actions/runners/$jit_runner_id" >/dev/null \
            && log "JIT runner $jit_runner_id deleted"
    elif [ -f .runner ]; then
        local token
        token=$(mint remove-token) || return 1
        ACTIONS_RUNNER_INPUT_TOKEN="$token" "${as_runner[@]}" ./config.sh remove
    fi
}

runner=
stop() {
    trap - TERM INT
    if [ -n "$runner" ]; then
        kill -TERM "$runner" 2>/dev/null || true
        wait "$runner" 2>/dev/null || true
    fi
    deregister || log "deregistering failed"
    exit 143
}
# A SIGTERM while registering is kept until registration is done, then deregisters what was registered.
stop_requested=
trap 'stop_requested=1' TERM INT

if [ -f .runner ]; then  # left by the previous start of this container (restart policy)
    log "deregistering the runner configured by the previous start"
    deregister || {
        log "could not deregister it; registering afresh with --replace"
        "${as_runner[@]}" rm -f .runner .credentials .credentials_rsaparams
    }
fi

if [ "$mode" = jit ]; then
    body=$(jq -nc --arg name "$name" --arg labels "$labels" --argjson group "${RUNNER_GROUP_ID:-1}" \
        '{name: $name, runner_group_id: $group, labels: ($labels | split(",")), work_folder: "_work"}')
    credential=$(api_token) || exit 1
    answer=$(bearer_curl "$credential" -X POST -H 'Content-Type: application/json' --data-binary "$body" \
        "$api/$scope/actions/runners/generate-jitconfig")
    jit_runner_id=$(printf '%s' "$answer" | jq -er .runner.id)
    ACTIONS_RUNNER_INPUT_JITCONFIG=$(printf '%s' "$answer" | jq -er .encoded_jit_config)
    export ACTIONS_RUNNER_INPUT_JITCONFIG
    unset answer credential
    log "JIT runner $jit_runner_id ($name: $labels)"
else
    extra=(--disableupdate)
    [ "$ephemeral" = true ] && extra+=(--ephemeral)
    token=$(mint registration-token) || exit 1
    ACTIONS_RUNNER_INPUT_TOKEN="$token" "${as_runner[@]}" ./config.sh --unattended --replace --url "$GITHUB_URL" \
        --name "$name" --labels "$labels" --work _work "${extra[@]}"
    unset token
fi

trap stop TERM INT
[ -z "$stop_requested" ] || stop
"${as_runner[@]}" ./run.sh &
runner=$!
unset ACTIONS_RUNNER_INPUT_JITCONFIG
status=0
wait "$runner" || status=$?
if [ "$ephemeral" = true ] && [ "$status" = 0 ]; then
    # An ephemeral runner ran its one job and GitHub removed it: forget it, so the next start registers afresh.
    "${as_runner[@]}" rm -f .runner .credentials .credentials_rsaparams
    log "ephemeral runner done; the next start registers a new one"
fi
exit "$status"
