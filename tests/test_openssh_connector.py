"""The OpenSSH connector's command lines and failure words: pure (the lab tests carry real commands over it)."""

from __future__ import annotations

from archfleet.ssh import connect_failure, ssh_options


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
