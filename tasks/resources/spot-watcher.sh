#!/bin/sh
# archfleet spot interruption watcher. Installed by deploys/host.py on spot instances (tasks/spot_watcher.py).
#
# Every `interval` seconds it asks the instance metadata service, IMDSv2 style (a session token first), for
#   latest/meta-data/spot/instance-action              (the two-minute interruption notice)
#   latest/meta-data/events/recommendations/rebalance  (the earlier rebalance recommendation)
# On a notice it stops the containers listed as `stop=` lines in the config, in that order (the CI runner first, so
# it stops taking jobs and deregisters), and logs each step with a UTC timestamp. A notice is acted on once.
#
# Config (key=value lines): metadata_url, interval, stop_timeout (seconds `docker stop` waits), log, stop (repeated).
set -u
conf=${1:-/etc/archfleet/spot-watcher.conf}
metadata_url=http://169.254.169.254
interval=5
stop_timeout=30
log=/var/log/archfleet-spot-watcher.log
stop_order=""
while IFS='=' read -r key value; do
    case "$key" in
        metadata_url) metadata_url=$value ;;
        interval) interval=$value ;;
        stop_timeout) stop_timeout=$value ;;
        log) log=$value ;;
        stop) stop_order="$stop_order $value" ;;
    esac
done < "$conf"

say() {
    echo "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ) $*" >> "$log"
}

metadata() {
    # Prints the body of a metadata path; succeeds only on HTTP 200 (a path without a notice answers 404).
    curl -sf --max-time 2 -H "X-aws-ec2-metadata-token: $token" "$metadata_url/latest/meta-data/$1"
}

say "watching $metadata_url every ${interval}s; stop order:${stop_order:- (none)}"
handled=""
while :; do
    token=$(curl -sf --max-time 2 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" \
        "$metadata_url/latest/api/token") || token=""
    if [ -n "$token" ]; then
        notice=""
        if body=$(metadata spot/instance-action); then
            notice="spot/instance-action $body"
        elif body=$(metadata events/recommendations/rebalance); then
            notice="rebalance-recommendation $body"
        fi
        if [ -n "$notice" ] && [ "$notice" != "$handled" ]; then
            say "notice: $notice"
            for name in $stop_order; do
                say "stopping $name"
                if output=$(docker stop -t "$stop_timeout" "$name" 2>&1); then
                    say "stopped $name"
                else
                    say "could not stop $name: $output"
                fi
            done
            say "done: stopped in order:${stop_order:- (none)}"
            handled=$notice
        fi
    fi
    sleep "$interval"
done
