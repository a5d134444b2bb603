"""A package cache for the lab's hosts: Debian's apt-cacher-ng on the lab network's gateway.

Every lab host gets an apt setting (mounted read-only at :data:`HOST_APT_CONF`) that sends its plain-HTTP package
downloads through the cache, so that installing Docker on a fresh host, which the tests do many times a run,
fetches from the distro's mirror once per package version. Nothing on the host is archfleet's own doing: the
host bootstrap runs the same `apt-get` as on any machine. The cached files live in the cache folder
(``/var/cache/archfleet/apt-cacher-ng/lab``) and outlive `lab down`; the cache's config, log and process are the lab's
and go with it.

Its port is not apt-cacher-ng's usual 3142, which Debian's own service of the package listens on (all addresses)
where an init system starts it.
"""

from __future__ import annotations

import socket
from pathlib import Path

from archfleet.lab.registry import pid_of, start_daemon, stop_pid
from archfleet.lab.state import LabPaths, write_private
from archfleet.run import say

PORT = 3143
HOST_APT_CONF = "/etc/apt/apt.conf.d/00archfleet-lab-package-cache"


def proxy_url(gateway: str) -> str:
    return f"http://{gateway}:{PORT}/"


def host_apt_setting(gateway: str) -> str:
    """What a lab host's apt reads: every plain-HTTP download through the cache."""
    return f'Acquire::http::Proxy "{proxy_url(gateway)}";\n'


def render_config(paths: LabPaths, gateway: str) -> str:
    """apt-cacher-ng's config: no mirror remapping (it fetches what each URL names), the lab gateway only."""
    return "".join(f"{key}: {value}\n" for key, value in (
        ("CacheDir", paths.apt_cache_files),
        ("LogDir", paths.apt_cache_dir / "log"),
        ("SupportDir", "/usr/lib/apt-cacher-ng"),
        ("Port", PORT),
        ("BindAddress", gateway),
        ("PidFile", paths.apt_cache_dir / "apt-cacher-ng.pid"),
        ("ExThreshold", 4),  # days an unreferenced package stays after a cache maintenance run
    ))


def answers(gateway: str) -> bool:
    try:
        with socket.create_connection((gateway, PORT), timeout=2) as connection:
            connection.sendall(b"GET /acng-report.html HTTP/1.0\r\n\r\n")
            return connection.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


def pid_file(paths: LabPaths) -> Path:
    return paths.apt_cache_dir / "process.pid"


def ensure_apt_cache(paths: LabPaths, gateway: str) -> None:
    """apt-cacher-ng running on the gateway with the lab's config (restarted when the config changed), and the
    setting the hosts mount written."""
    config = render_config(paths, gateway)
    config_file = paths.apt_cache_dir / "acng.conf"
    changed = not config_file.exists() or config_file.read_text() != config
    if changed:
        write_private(config_file, config)
    setting = paths.apt_host_setting
    if not setting.exists() or setting.read_text() != host_apt_setting(gateway):
        setting.write_text(host_apt_setting(gateway))
    setting.chmod(0o644)  # read on the hosts through a bind mount
    paths.apt_cache_files.mkdir(parents=True, exist_ok=True)
    (paths.apt_cache_dir / "log").mkdir(exist_ok=True)
    pid = pid_of(pid_file(paths), b"apt-cacher-ng")
    if pid and not changed and answers(gateway):
        return
    if pid:
        stop_pid(pid_file(paths), b"apt-cacher-ng")
    say(f"starting the lab's package cache (apt-cacher-ng) on {gateway}:{PORT}")
    start_daemon(["apt-cacher-ng", "-c", str(paths.apt_cache_dir), "ForeGround=1"], pid_file(paths),
                 paths.apt_cache_dir / "log" / "stdout.log", lambda: answers(gateway),
                 f"the package cache did not answer on {gateway}:{PORT}")


def stop_apt_cache(paths: LabPaths) -> None:
    stop_pid(pid_file(paths), b"apt-cacher-ng")
