#!/usr/bin/env bash
# `make test`'s body, run while holding the lab's lock: lint and the whole suite against a lab brought up from
# nothing, in phases that overlap where they can (this machine has 2 cores, and the lab side mostly waits):
#
#   1. `archfleet lab down`: nothing a killed run left behind (hosts, containers, registry tags) reaches the tests;
#      only the caches of slow things stay (rootfs tarballs, the hosts' packages, built images keyed by their
#      inputs: archfleet/lab/apt_cache.py, archfleet/lab/image_cache.py);
#   2. at once: (a) lint (ruff, mypy), then the tests that need no lab; (b) tests/lab/test_demo.py: `archfleet demo`
#      from the lab that is down, which is also the suite's lab bring-up;
#   3. every other lab test;
#   4. `archfleet lab down` (also when stopped by a signal: CI's time bound).
#
# Each pytest prints its 20 slowest steps (--durations=20); the end says each phase's time and result, and the
# run fails when any phase failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
WORK=$(mktemp -d /tmp/archfleet-suite.XXXXXX)
PYTEST=("$BIN/pytest" -p no:cacheprovider --durations=20)
SUITE_START=$SECONDS
SUMMARY=()
FAILED=0

record() {  # record NAME SECONDS STATUS
    SUMMARY+=("$(printf '  %-44s %5ss  %s' "$1" "$2" "$([ "$3" = 0 ] && echo ok || echo "FAILED (exit $3)")")")
    [ "$3" = 0 ] || FAILED=1
}

finish() {
    local status=$?
    trap - EXIT TERM INT
    if [ -n "${SIDE:-}" ] && kill -0 "$SIDE" 2>/dev/null; then
        kill -TERM -- "-$SIDE" 2>/dev/null || kill -TERM "$SIDE" 2>/dev/null
    fi
    local started=$SECONDS
    "$BIN/archfleet" lab down
    record "lab down (end)" $((SECONDS - started)) $?
    echo
    echo "make test: phases (wall-clock)"
    printf '%s\n' "${SUMMARY[@]}"
    printf '  %-44s %5ss\n' "total (under the lab's lock)" $((SECONDS - SUITE_START))
    rm -rf "$WORK"
    if [ "$status" -ne 0 ] && [ "$FAILED" = 0 ]; then FAILED=1; fi
    exit "$FAILED"
}
trap finish EXIT
trap 'echo "make test: stopped by a signal; taking the lab down" >&2; exit 143' TERM INT

started=$SECONDS
"$BIN/archfleet" lab down
record "lab down (start)" $((SECONDS - started)) $?

# (a) in its own process group (so that a signal stops all of it), its output kept for after (b)
side_started=$SECONDS
set -m
(
    status=0
    started=$SECONDS
    { "$BIN/ruff" check . && "$BIN/mypy"; } >"$WORK/lint.log" 2>&1 || status=$?
    echo "$((SECONDS - started)) $status" >"$WORK/lint.status"
    started=$SECONDS
    "${PYTEST[@]}" --basetemp="$WORK/unit" -m 'not lab' >"$WORK/unit.log" 2>&1
    echo "$((SECONDS - started)) $?" >"$WORK/unit.status"
) &
SIDE=$!
set +m

started=$SECONDS
"${PYTEST[@]}" --basetemp="$WORK/demo" tests/lab/test_demo.py
record "demo from a lab that is down (lab bring-up)" $((SECONDS - started)) $?

wait "$SIDE"
SIDE=
echo
echo "---- lint (ran alongside the demo) ----"
cat "$WORK/lint.log"
read -r seconds status <"$WORK/lint.status" || { seconds=0; status=1; }
record "lint (ruff, mypy; alongside the demo)" "$seconds" "$status"
echo "---- tests without the lab (ran alongside the demo) ----"
cat "$WORK/unit.log"
read -r seconds status <"$WORK/unit.status" || { seconds=0; status=1; }
record "tests without the lab (alongside the demo)" "$seconds" "$status"
echo "---- (the demo phase and the two above took $((SECONDS - side_started))s of wall-clock together) ----"

started=$SECONDS
"${PYTEST[@]}" --basetemp="$WORK/lab" -m lab --deselect tests/lab/test_demo.py
record "lab tests" $((SECONDS - started)) $?
