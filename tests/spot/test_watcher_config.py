"""The interruption watcher's config and commands, as text (tasks/spot_watcher.py)."""

from __future__ import annotations

import pytest

from archfleet.errors import InputError
from archfleet.tasks.spot_watcher import enable, service, stop_order_from, watcher_config


def test_config_lists_the_stop_order_one_line_each() -> None:
    text = watcher_config("http://172.28.77.1:8111/", ["archfleet-buildbot-worker", "archfleet-v2ray"], 5, 20)
    assert text.splitlines()[1:] == [
        "metadata_url=http://172.28.77.1:8111", "interval=5", "stop_timeout=20",
        "log=/var/log/archfleet-spot-watcher.log", "stop=archfleet-buildbot-worker", "stop=archfleet-v2ray"]


@pytest.mark.parametrize(("url", "names"), [
    ("169.254.169.254", []), ("http://x/ $(reboot)", []), ("http://169.254.169.254", ["a b"]),
    ("http://169.254.169.254", ["-rm"]), ("http://169.254.169.254", ["ok\nstop=evil"]),
    ("http://169.254.169.254", ["ok\n"]), ("http://169.254.169.254\n", []),
])
def test_config_refuses_what_could_break_out_of_it(url: str, names: list[str]) -> None:
    with pytest.raises(InputError):
        watcher_config(url, names)


def test_stop_order_from_host_data() -> None:
    assert stop_order_from(["archfleet-ci", "archfleet-proxy"]) == ["archfleet-ci", "archfleet-proxy"]
    assert stop_order_from("archfleet-ci, archfleet-proxy") == ["archfleet-ci", "archfleet-proxy"]
    assert stop_order_from(None) == [] and stop_order_from("") == []
    with pytest.raises(InputError):
        stop_order_from({"a": 1})


def test_service_commands_per_init_system() -> None:
    assert str(service("sysvinit", "start")) == "/etc/init.d/archfleet-spot-watcher start"
    assert str(service("systemd", "restart")) == "systemctl restart archfleet-spot-watcher.service"
    assert str(enable("sysvinit")) == "update-rc.d archfleet-spot-watcher defaults"
    assert str(enable("systemd")) == "systemctl enable archfleet-spot-watcher.service"
