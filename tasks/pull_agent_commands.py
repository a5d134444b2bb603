"""The pull agent of a ``converge: pull`` spot fleet's instances: pure builders of its text (docs/spot.md, pull mode).

The agent is one ``sh`` run per tick: it reads the fleet's ``release/current`` from SSM and, when it names another
release than the one this host last applied, fetches that release's script for the host's architecture (the same
chunks and sha256 the boot loader checks), runs it (the sync's own step scripts: pull by digest, switch with its
health check, the previous container put back when the new one fails) and records the result. It follows only
``release/current``, which a sync writes only after its rollout stood on the hosts it reaches (its canary first):
a release a failed sync wrote but did not make current is never applied here.

Its results, on the host (``SPOT_DIR``): ``release`` (the release it runs: booted or last applied), ``result``
(``ID TIME ok`` or ``ID TIME failed: REASON``, the last converge), ``failed`` (``ID EPOCH`` of a release that
failed); on the instance, where ``spot status`` reads them: the tags ``archfleet:release`` (the release it runs)
and ``archfleet:converge`` (the ``result`` line). A release that failed is tried again when ``release/current``
changes, or after ``RETRY_INTERVALS`` ticks (a registry that was down comes back).

Its runner: a systemd timer (``archfleet-pull-agent.timer`` starting the oneshot ``.service``) where systemd runs,
else an init script (``/etc/init.d/archfleet-pull-agent``) whose daemon runs the agent, then sleeps, in a loop.
The agent's shell functions (``say``, ``die``, ``role_credentials``, ``ssm_value``, ``tag_instance``,
``fetch_release``: the head, chunks and sha256 check of the boot) and its variables are the boot loader's
(``archfleet/spot/user_data.py`` composes the file); nothing in it is secret.
"""

from __future__ import annotations

NAME = "archfleet-pull-agent"
AGENT_PATH = f"/usr/local/sbin/{NAME}"  # one converge (the boot loader's functions + AGENT_BODY)
LOOP_PATH = f"/usr/local/sbin/{NAME}-loop"  # sysvinit: the agent, then a sleep, forever
UNIT_PATH = f"/etc/systemd/system/{NAME}.service"
TIMER_PATH = f"/etc/systemd/system/{NAME}.timer"
INIT_SCRIPT_PATH = f"/etc/init.d/{NAME}"
LOG_PATH = f"/var/log/{NAME}.log"
CONVERGE_TAG = "archfleet:converge"  # the instance's tag: the agent's last result (``ID TIME ok|failed: REASON``)
RETRY_INTERVALS = 10  # a failed release is tried again after this many ticks (sooner when release/current changes)

# Runs after the boot loader's functions and variables (METADATA_URL, REGION, ARCH, SSM_ENDPOINT, EC2_ENDPOINT,
# RELEASE_POINTER, RELEASES, RELEASE_TAG_KEY, SPOT_DIR) and PULL_INTERVAL, CONVERGE_TAG_KEY.
AGENT_BODY = r"""install -d -m 0700 "$SPOT_DIR" || die "cannot write $SPOT_DIR"
role_credentials
# Only release/current: a release a sync wrote without making it current (its canary failed) is never read here.
RELEASE=$(ssm_value "$RELEASE_POINTER") || exit 1
case $RELEASE in ''|*[!A-Za-z0-9_.-]*) die "SSM parameter $RELEASE_POINTER does not name a release" ;; esac
applied=$(cat "$SPOT_DIR/release" 2>/dev/null || true)
[ "$RELEASE" = "$applied" ] && exit 0
now=$(date +%s)
if [ -r "$SPOT_DIR/failed" ]; then
  read -r failed_id failed_at <"$SPOT_DIR/failed" || true
  if [ "${failed_id:-}" = "$RELEASE" ] && [ $((now - ${failed_at:-0})) -lt $((PULL_INTERVAL * RETRY_INTERVALS)) ]; then
    exit 0  # failed here lately: tried again when release/current changes, or after the backoff
  fi
fi
say "converging from ${applied:-nothing} to release $RELEASE"
( fetch_release "$RELEASE" "$SPOT_DIR/pull.sh" && . "$SPOT_DIR/pull.sh" ) 2>"$SPOT_DIR/pull.err"
status=$?
cat "$SPOT_DIR/pull.err" >&2
when=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ "$status" -eq 0 ]; then
  printf '%s\n' "$RELEASE" >"$SPOT_DIR/release" && chmod 0644 "$SPOT_DIR/release"
  rm -f "$SPOT_DIR/failed"
  result="$RELEASE $when ok"
  tag_instance "$RELEASE_TAG_KEY" "$RELEASE" || say "could not tag this instance with its release"
else
  reason=$(sed -n 's/^archfleet-failure: //p' "$SPOT_DIR/pull.err" | tail -n 1 | tr -cd 'A-Za-z0-9 _.:/=+@()-')
  printf '%s %s\n' "$RELEASE" "$now" >"$SPOT_DIR/failed"
  result="$RELEASE $when failed: ${reason:-exit $status}"
fi
printf '%s\n' "$result" >"$SPOT_DIR/result" && chmod 0644 "$SPOT_DIR/result"
tag_instance "$CONVERGE_TAG_KEY" "$(printf '%s' "$result" | cut -c 1-250)" ||
  say "could not tag this instance with its converge result"
say "$result"
[ "$status" -eq 0 ]
""".replace("RETRY_INTERVALS)", f"{RETRY_INTERVALS})")

LOOP_SCRIPT = f"""#!/bin/sh
# Installed by archfleet (tasks/pull_agent_commands.py): the pull agent, then a sleep of INTERVAL seconds, forever.
while :; do
  {AGENT_PATH} >>{LOG_PATH} 2>&1
  sleep "$1"
done
"""

INIT_SCRIPT = f"""#!/bin/sh
### BEGIN INIT INFO
# Provides:          {NAME}
# Required-Start:    $remote_fs $network
# Required-Stop:     $remote_fs $network
# Should-Start:      docker
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: archfleet pull agent
# Description:       Converges this host to its spot fleet's current release every interval.
### END INIT INFO
# Installed by archfleet (tasks/pull_agent_commands.py).

NAME={NAME}
DAEMON={LOOP_PATH}
PIDFILE=/run/$NAME.pid
INTERVAL=$(cat /etc/archfleet/pull-interval 2>/dev/null || echo 60)

running() {{
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}}

case "$1" in
    start)
        if running; then
            echo "$NAME is running"
            exit 0
        fi
        start-stop-daemon --start --quiet --background --make-pidfile --pidfile "$PIDFILE" --startas "$DAEMON" \\
            -- "$INTERVAL"
        ;;
    stop)
        start-stop-daemon --stop --quiet --oknodo --retry 5 --pidfile "$PIDFILE"
        rm -f "$PIDFILE"
        ;;
    restart|force-reload)
        "$0" stop
        "$0" start
        ;;
    status)
        if running; then
            echo "$NAME is running"
            exit 0
        fi
        echo "$NAME is not running"
        exit 3
        ;;
    *)
        echo "Usage: $0 {{start|stop|restart|force-reload|status}}" >&2
        exit 2
        ;;
esac
"""

INTERVAL_PATH = "/etc/archfleet/pull-interval"


def unit_text() -> str:
    return f"""# Installed by archfleet (tasks/pull_agent_commands.py).
[Unit]
Description=archfleet pull agent: converge to the spot fleet's current release
After=network-online.target docker.service
Wants=network-online.target

[Service]
Type=oneshot
ExecStart={AGENT_PATH}
StandardOutput=append:{LOG_PATH}
StandardError=append:{LOG_PATH}
"""


def timer_text(interval: int) -> str:
    """Every ``interval`` seconds after the last run started, the first one ``interval`` seconds after boot."""
    seconds = int(interval)
    return f"""# Installed by archfleet (tasks/pull_agent_commands.py).
[Unit]
Description=archfleet pull agent every {seconds} s

[Timer]
OnBootSec={seconds}s
OnUnitActiveSec={seconds}s
AccuracySec=1s

[Install]
WantedBy=timers.target
"""


def runner_files(init_system: str, interval: int) -> dict[str, tuple[str, str]]:
    """Path -> (content, mode) of what runs the agent every ``interval`` seconds on a host with this init system
    (``systemd``, else an init script)."""
    if init_system == "systemd":
        return {UNIT_PATH: (unit_text(), "0644"), TIMER_PATH: (timer_text(interval), "0644")}
    return {LOOP_PATH: (LOOP_SCRIPT, "0755"), INIT_SCRIPT_PATH: (INIT_SCRIPT, "0755"),
            INTERVAL_PATH: (f"{int(interval)}\n", "0644")}


def start_lines(init_system: str) -> list[str]:
    """Commands that enable the runner at boot and (re)start it."""
    if init_system == "systemd":
        return ["systemctl daemon-reload", f"systemctl enable --now {NAME}.timer >/dev/null 2>&1",
                f"systemctl restart {NAME}.timer"]
    return [f"update-rc.d {NAME} defaults >/dev/null 2>&1 || true", f"{INIT_SCRIPT_PATH} restart >/dev/null"]
