# The arm64 host's Docker engine under QEMU: dockerd stays arm64 (it decides which platform to
# pull), but containerd, its shim and runc are x86_64 (runc's namespace work fails under QEMU),
# with the x86_64 loader and libraries they link. No iptables or bridge (both fail under QEMU).
ARG BASE
FROM ${BASE}
COPY x86_64/ /
RUN printf '%s\n' '' \
    '# Lab wiring for an arm64 engine on an x86_64 kernel (see arm64-engine.Dockerfile).' \
    'export PATH=/opt/x86_64/bin:$PATH' \
    'DOCKER_OPTS="--iptables=false --ip6tables=false --bridge=none"' >> /etc/default/docker
