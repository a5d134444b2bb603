"""The local lab: real amd64 and arm64 hosts (containers with sshd and their own Docker engine),
a private TLS registry with auth, all on this machine."""
