#!/bin/sh
# Create the master's base dir on first start (master.cfg is mounted), then run the master in the foreground.
set -eu
dir=/var/lib/buildbot/master
[ -r "$dir/master.cfg" ] || { echo "archfleet-buildbot-master: mount master.cfg at $dir/master.cfg" >&2; exit 2; }
mkdir -p "$dir/state"
if [ ! -f "$dir/buildbot.tac" ]; then
    buildbot create-master --relocatable --db "sqlite:///state/state.sqlite" "$dir" >/dev/null
fi
buildbot upgrade-master "$dir" >/dev/null
rm -f "$dir/twistd.pid"
exec buildbot start --nodaemon "$dir"
