"""The corpus's inventory: every host is the test's loopback listener, which fails the test on any connection
(a malformed fleet file must be refused before anything is contacted)."""

_listener = {"ssh_hostname": "127.0.0.1", "ssh_port": int("@PORT@")}  # the test fills in the port

amd64 = [("amd64-1", dict(_listener)), ("amd64-2", dict(_listener))]
arm64 = [("arm64-1", dict(_listener))]
