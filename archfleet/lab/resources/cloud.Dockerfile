# A lab host as Debian's cloud images are: root cannot log in over SSH; the user `admin` logs in with a key and has
# passwordless sudo. Built on the amd64 host image (sshd, host keys made on first boot by lab-init).
ARG BASE
FROM ${BASE}
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends sudo \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --shell /bin/bash admin \
 && usermod --password '*' admin \
 && install -d -o admin -g admin -m 0700 /home/admin/.ssh \
 && printf 'admin ALL=(ALL) NOPASSWD:ALL\n' > /etc/sudoers.d/90-cloud-init-users \
 && chmod 0440 /etc/sudoers.d/90-cloud-init-users \
 && printf 'PermitRootLogin no\n' > /etc/ssh/sshd_config.d/cloud.conf
