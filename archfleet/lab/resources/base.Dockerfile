# Debian 12 from a debootstrap rootfs; built with --platform so the image records its architecture.
FROM scratch
ADD rootfs.tar /
CMD ["bash"]
