"""The OpenSSH connector's command lines and failure words, and the one check every host in an ssh argv passes:
pure (the lab tests carry real commands over it)."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import pytest

from archfleet.errors import InputError
from archfleet.ssh import (
    connect_failure,
    host_address,
    is_host_address,
    ssh_argv,
    ssh_destination,
    ssh_options,
)


def test_options_follow_pyinfras_host_data() -> None:
    options = ssh_options({"ssh_user": "admin", "ssh_port": 2222, "ssh_key": "/k", "ssh_known_hosts_file": "/kh",
                           "ssh_strict_host_key_checking": "accept-new"}, "/run/c", 30)
    text = " ".join(options)
    assert "-o BatchMode=yes" in text and "-o ConnectTimeout=30" in text and "-o ControlPath=/run/c" in text
    assert "-o StrictHostKeyChecking=accept-new" in text and "-o UserKnownHostsFile=/kh" in text
    assert "-i /k -o IdentitiesOnly=yes" in text and "-p 2222" in text and "-l admin" in text


def test_host_keys_are_checked_by_default() -> None:
    assert "StrictHostKeyChecking=yes" in ssh_options({}, "/c", 10)


def test_failures_in_a_few_words() -> None:
    assert connect_failure("ssh: connect to host 10.0.0.1 port 22: Connection refused") == "connection refused"
    changed = "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed."
    assert connect_failure(changed).startswith("host key mismatch")
    assert connect_failure("Connection timed out during banner exchange") == "connect timed out"
    assert connect_failure("root@h: Permission denied (publickey).") == "SSH authentication failed"


def test_a_host_that_stops_answering_is_a_time_out() -> None:
    assert connect_failure("Timeout, server 10.0.0.1 not responding.").startswith("timed out after 60 s")


HOSTILE = ["-oProxyCommand=touch /tmp/x", "-p", "root@10.0.0.1", "ssh://h", "a b", "", "h;id", "-", "a..b",
           "x" * 64 + ".example.com", "host/..", "[::1]", "%h", "h\n-oX"]


@pytest.mark.parametrize("value", ["10.0.0.1", "::1", "fe80::1%eth0", "ip-10-0-0-1.eu-west-1.compute.internal",
                                   "amd64-1", "web_1", "example.com.", "i-0abc"])
def test_host_names_and_addresses_are_hosts(value: str) -> None:
    assert is_host_address(value) and host_address(value) == value


@pytest.mark.parametrize("value", HOSTILE)
def test_anything_else_is_refused(value: str) -> None:
    assert not is_host_address(value)
    with pytest.raises(InputError, match="not a host name or IP address"):
        host_address(value, "tag")


@pytest.mark.parametrize("value", [v for v in HOSTILE if v])  # an empty ssh_hostname is no ssh_hostname
def test_no_argv_takes_a_host_that_is_no_host(value: str) -> None:
    with pytest.raises(InputError):
        ssh_options({"ssh_hostname": value}, "/c", 10)
    with pytest.raises(InputError):
        ssh_destination({"ssh_hostname": value}, "web-1")
    with pytest.raises(InputError):
        ssh_destination({}, value)  # the inventory name, when there is no ssh_hostname
    with pytest.raises(InputError):
        ssh_argv("root", value)


def test_the_destination_is_the_last_word_before_the_remote_command() -> None:
    argv = ssh_argv("root", "10.0.0.1", key="/k", known_hosts="/kh", port=2222, options=("-N",))
    assert argv[-2:] == ["root@10.0.0.1", "--"] and argv[-3] == "-N"
    with pytest.raises(InputError):
        ssh_argv("-oProxyCommand=x", "10.0.0.1")
    assert ssh_destination({"ssh_hostname": "10.0.0.2"}, "web-1") == "10.0.0.2"
    assert ssh_destination({"ssh_hostname": None}, "web-1") == "web-1"


class FakeHost:
    def __init__(self, name: str, data: Mapping[str, object]):
        self.name, self.data = name, SimpleNamespace(get=data.get)


def test_the_connector_and_the_reads_put_a_checked_host_right_before_the_double_dash() -> None:
    from pyinfra.api.exceptions import ConnectError

    from archfleet.connectors.openssh import OpenSSHConnector
    from archfleet.sync.read import ssh_command

    good = FakeHost("web-1", {"ssh_hostname": "10.0.0.3", "ssh_user": "admin"})
    argv = ssh_command(good, "true", 5)
    assert argv[argv.index("--") - 1] == "10.0.0.3" and argv[0] == "ssh"
    connector = OpenSSHConnector.__new__(OpenSSHConnector)
    connector.host, connector.state = good, SimpleNamespace(config=SimpleNamespace(CONNECT_TIMEOUT=5))  # type: ignore
    connector.data = {"ssh_hostname": "10.0.0.3"}
    argv = connector.argv("true")
    assert argv[argv.index("--") - 1] == "10.0.0.3"
    cases: list[tuple[dict[str, object], str]] = [({"ssh_hostname": "-oProxyCommand=x"}, "web-1"),
                                                  ({}, "-oProxyCommand=x")]
    for data, name in cases:
        with pytest.raises(InputError):
            ssh_command(FakeHost(name, data), "true", 5)
        connector.host, connector.data = FakeHost(name, data), dict(data)  # type: ignore[assignment]
        with pytest.raises(ConnectError, match="not a host name"):
            connector.argv("true")
