# A lab host: Debian 12 with sshd. PACKAGES adds what this kind of host ships with.
ARG BASE
FROM ${BASE}
ARG PACKAGES=openssh-server
# policy-rc.d keeps package scripts from starting daemons while the image builds.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES \
 && rm -f /usr/sbin/policy-rc.d /etc/ssh/ssh_host_* \
 && rm -rf /var/lib/apt/lists/*
COPY lab-init /usr/local/sbin/lab-init
COPY docker.default /etc/default/docker
CMD ["/usr/local/sbin/lab-init"]
